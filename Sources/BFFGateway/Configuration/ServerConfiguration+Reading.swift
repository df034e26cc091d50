import BFFCore

extension ServerConfiguration {
    /// Reads `server:` (the gateway's own `dataDirectory` is read by the loader).
    mutating func read(_ section: ConfigSection) {
        if let listen = section.string("listen") {
            if let (host, port) = GatewayConfigurationLoader.parseListen(listen) {
                self.host = host
                self.port = port
            } else {
                section.problem("listen", "'\(listen)' is not host:port", "write it as 127.0.0.1:5080")
            }
        }
        publicOrigin = section.string("publicOrigin")
        if let value = section.stringList("trustedProxies") { trustedProxies = value }
        if let value = section.int("maxHeaderBytes") { maxHeaderBytes = value }
        if let value = section.duration("idleTimeout") { idleTimeout = value }
        if let value = section.duration("shutdownGrace") { shutdownGrace = value }
        if let value = section.string("environment") { environment = value }
    }
}
