/// `server:` settings.
public struct ServerConfiguration: Sendable {
    /// Listen host, `127.0.0.1` by default.
    public var host: String
    /// Listen port, 5080 by default.
    public var port: Int
    /// The origin the browser uses (`scheme://host[:port]`); redirect URIs derive from it. Required
    /// unless `host` is loopback; nil means `http://localhost:<port>`. The Host header is never used.
    public var publicOrigin: String?
    /// CIDRs whose `X-Forwarded-*` headers are honoured; empty by default.
    public var trustedProxies: [String]
    /// Largest accepted request head, 32 KiB by default.
    public var maxHeaderBytes: Int
    /// Idle keep-alive connections are closed after this, 75 s by default.
    public var idleTimeout: Duration
    /// `production` (default) or `development` (enables `/bff/diagnostics`).
    public var environment: String
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish, 10 s by default; then their
    /// connections are closed and the process exits.
    public var shutdownGrace: Duration

    /// Creates server settings with the defaults.
    public init(
        host: String = "127.0.0.1", port: Int = 5080, publicOrigin: String? = nil, trustedProxies: [String] = [],
        maxHeaderBytes: Int = 32768, idleTimeout: Duration = .seconds(75), environment: String = "production",
        shutdownGrace: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.publicOrigin = publicOrigin
        self.trustedProxies = trustedProxies
        self.maxHeaderBytes = maxHeaderBytes
        self.idleTimeout = idleTimeout
        self.environment = environment
        self.shutdownGrace = shutdownGrace
    }

    /// Whether development-only features may run.
    public var isDevelopment: Bool { environment == "development" }

    /// The public origin in effect.
    public var effectivePublicOrigin: String { publicOrigin ?? "http://localhost:\(port)" }
}
