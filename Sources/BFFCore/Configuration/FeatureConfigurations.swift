/// `tokens:` settings.
public struct TokenConfiguration: Sendable {
    /// Refresh user tokens that expire within this, 60 s by default.
    public var refreshBeforeExpiry: Duration
    /// Revoke the refresh token at the IdP on logout; on by default.
    public var revokeRefreshTokenOnLogout: Bool
    /// Creates token settings with the defaults.
    public init(refreshBeforeExpiry: Duration = .seconds(60), revokeRefreshTokenOnLogout: Bool = true) {
        self.refreshBeforeExpiry = refreshBeforeExpiry
        self.revokeRefreshTokenOnLogout = revokeRefreshTokenOnLogout
    }
}

/// `logout:` settings.
public struct LogoutConfiguration: Sendable {
    /// Serve `/bff/frontchannel` (OIDC Front-Channel Logout); off by default. The endpoint is
    /// unauthenticated by design and `sid` is no secret (it is in ID tokens, logout tokens and
    /// `/bff/user`), so when on, any page can end a user's session with an `<img>` tag; prefer
    /// back-channel logout. Off, the path answers 404.
    public var frontChannel: Bool
    /// Creates logout settings with the defaults.
    public init(frontChannel: Bool = false) { self.frontChannel = frontChannel }
}

/// `antiforgery:` settings.
public struct AntiForgeryConfiguration: Sendable {
    /// Header name, `X-CSRF` by default.
    public var headerName: String
    /// Required exact value, `1` by default.
    public var headerValue: String
    /// Creates anti-forgery settings with the defaults.
    public init(headerName: String = "X-CSRF", headerValue: String = "1") {
        self.headerName = headerName
        self.headerValue = headerValue
    }
}

/// `user:` settings.
public struct UserConfiguration: Sendable {
    /// Answer anonymous `/bff/user` calls with 401 (default) or with 200 `null`.
    public var anonymousAsNull: Bool
    /// Claims never shown, `nonce at_hash c_hash` by default.
    public var excludeClaims: [String]
    /// Creates user settings with the defaults.
    public init(anonymousAsNull: Bool = false, excludeClaims: [String] = ["nonce", "at_hash", "c_hash"]) {
        self.anonymousAsNull = anonymousAsNull
        self.excludeClaims = excludeClaims
    }
}

/// `static:` settings.
public struct StaticFilesConfiguration: Sendable {
    /// Directory of the SPA build; nil serves nothing.
    public var root: String?
    /// History fallback file for HTML navigations, `index.html` by default.
    public var fallback: String
    /// A local development server (`http://127.0.0.1:5173`: Vite, webpack) that answers every
    /// request that is not the BFF's, an API route or a callback — its HMR WebSocket included.
    public var devServer: String?
    /// `index.html` fetched from a CDN or origin server (`https://cdn.example.com/app/index.html`)
    /// and cached (its `ETag` and `max-age`, 5 min by default) for SPA navigations; other files
    /// come from `root` when set, else from the same origin (proxied).
    public var indexURL: String?
    /// Creates static settings with the defaults.
    public init(root: String? = nil, fallback: String = "index.html", devServer: String? = nil, indexURL: String? = nil)
    {
        self.root = root
        self.fallback = fallback
        self.devServer = devServer
        self.indexURL = indexURL
    }
}

/// `admin:` settings.
public struct AdminConfiguration: Sendable {
    /// `host:port` of the health listener, `127.0.0.1:9090` by default; nil disables it.
    public var listen: String?
    /// Creates admin settings with the defaults.
    public init(listen: String? = "127.0.0.1:9090") { self.listen = listen }
}

/// `diagnostics:` settings.
public struct DiagnosticsConfiguration: Sendable {
    /// Show raw tokens on `/bff/diagnostics` (development only); off by default.
    public var showTokens: Bool
    /// Creates diagnostics settings with the defaults.
    public init(showTokens: Bool = false) { self.showTokens = showTokens }
}
