import BFFCore

extension ServerConfiguration {
    /// Reads `server:` (the gateway's own `dataDirectory` is read by the loader).
    mutating func read(_ section: ConfigSection) {
        if let listen = section.string(Key.listen) {
            if let (host, port) = GatewayConfigurationLoader.parseListen(listen) {
                self.host = host
                self.port = port
            } else {
                section.problem(Key.listen, "'\(listen)' is not host:port", "write it as 127.0.0.1:5080")
            }
        }
        publicOrigin = section.string(Key.publicOrigin)
        if let value = section.stringList(Key.trustedProxies) { trustedProxies = value }
        if let value = section.int(Key.maxHeaderBytes) { maxHeaderBytes = value }
        if let value = section.duration(Key.idleTimeout) { idleTimeout = value }
        if let value = section.duration(Key.shutdownGrace) { shutdownGrace = value }
        if let value = section.string(Key.environment) { environment = value }
    }
}
