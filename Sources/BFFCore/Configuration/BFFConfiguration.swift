/// The whole configuration of a BFF: every section of the YAML file (SPEC §2), typed, with the
/// documented secure defaults. Reading YAML and the environment is the gateway's job; library users
/// build this struct directly.
public struct BFFConfiguration: Sendable {
    /// `server:` — listener and public origin.
    public var server: ServerConfiguration
    /// `keys:` — sealing keys, active key first. Empty means "generate and persist one" (gateway).
    public var keys: [KeyRing.Key]
    /// `oidc:` — the identity provider and this client.
    public var oidc: OIDCConfiguration
    /// `session:` — store, cookie and lifetimes.
    public var session: SessionConfiguration
    /// `tokens:` — refresh and revocation behaviour.
    public var tokens: TokenConfiguration
    /// `antiforgery:` — the required header.
    public var antiforgery: AntiForgeryConfiguration
    /// `user:` — the `/bff/user` endpoint.
    public var user: UserConfiguration
    /// `static:` — the SPA files.
    public var staticFiles: StaticFilesConfiguration
    /// `admin:` — health and readiness listener.
    public var admin: AdminConfiguration
    /// `diagnostics:` — the development-only diagnostics endpoint.
    public var diagnostics: DiagnosticsConfiguration
    /// Path prefix of the management endpoints, `/bff` by default.
    public var managementPrefix: String
    /// `apis:` — remote API routes (reverse proxy), none by default.
    public var apis: [APIRouteConfiguration]

    /// Creates a configuration; every argument has the documented default.
    public init(
        server: ServerConfiguration = .init(),
        keys: [KeyRing.Key] = [],
        oidc: OIDCConfiguration = .init(),
        session: SessionConfiguration = .init(),
        tokens: TokenConfiguration = .init(),
        antiforgery: AntiForgeryConfiguration = .init(),
        user: UserConfiguration = .init(),
        staticFiles: StaticFilesConfiguration = .init(),
        admin: AdminConfiguration = .init(),
        diagnostics: DiagnosticsConfiguration = .init(),
        managementPrefix: String = "/bff",
        apis: [APIRouteConfiguration] = []
    ) {
        self.server = server
        self.keys = keys
        self.oidc = oidc
        self.session = session
        self.tokens = tokens
        self.antiforgery = antiforgery
        self.user = user
        self.staticFiles = staticFiles
        self.admin = admin
        self.diagnostics = diagnostics
        self.managementPrefix = managementPrefix
        self.apis = apis
    }
}

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

    /// Creates server settings with the defaults.
    public init(
        host: String = "127.0.0.1", port: Int = 5080, publicOrigin: String? = nil, trustedProxies: [String] = [],
        maxHeaderBytes: Int = 32768, idleTimeout: Duration = .seconds(75), environment: String = "production"
    ) {
        self.host = host
        self.port = port
        self.publicOrigin = publicOrigin
        self.trustedProxies = trustedProxies
        self.maxHeaderBytes = maxHeaderBytes
        self.idleTimeout = idleTimeout
        self.environment = environment
    }

    /// Whether development-only features may run.
    public var isDevelopment: Bool { environment == "development" }

    /// The public origin in effect.
    public var effectivePublicOrigin: String { publicOrigin ?? "http://localhost:\(port)" }
}

/// How the BFF authenticates itself at the token endpoint.
public struct ClientAuthentication: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable {
        case basic = "client_secret_basic"
        case post = "client_secret_post"
        case privateKeyJWT = "private_key_jwt"
    }
    let base: Base
    /// HTTP Basic with the client id and secret (default).
    public static let clientSecretBasic = ClientAuthentication(base: .basic)
    /// `client_id` and `client_secret` in the form body.
    public static let clientSecretPost = ClientAuthentication(base: .post)
    /// A signed client assertion (not yet supported; rejected by validation).
    public static let privateKeyJWT = ClientAuthentication(base: .privateKeyJWT)
    /// Parses the configuration name.
    public init?(name: String) {
        guard let base = Base(rawValue: name) else { return nil }
        self.base = base
    }
    init(base: Base) { self.base = base }
    /// The configuration name.
    public var description: String { base.rawValue }
}

/// A tri-state switch: `auto` follows what the IdP advertises.
public struct AutoSwitch: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable {
        case auto
        case on = "true"
        case off = "false"
    }
    let base: Base
    /// Decide from the IdP's metadata.
    public static let auto = AutoSwitch(base: .auto)
    /// Always.
    public static let on = AutoSwitch(base: .on)
    /// Never.
    public static let off = AutoSwitch(base: .off)
    /// Parses `auto`, `true` or `false`.
    public init?(name: String) {
        guard let base = Base(rawValue: name.lowercased()) else { return nil }
        self.base = base
    }
    init(base: Base) { self.base = base }
    /// Resolves against whether the IdP advertises the feature.
    public func isEnabled(advertised: Bool) -> Bool {
        switch base {
        case .auto: return advertised
        case .on: return true
        case .off: return false
        }
    }
    /// The configuration name.
    public var description: String { base.rawValue }
}

/// `oidc:` settings.
public struct OIDCConfiguration: Sendable {
    /// Issuer URL; discovery is read from `{issuer}/.well-known/openid-configuration`.
    public var issuer: String
    /// Client id.
    public var clientID: String
    /// Client secret (resolved; never logged).
    public var clientSecret: String?
    /// Token endpoint authentication, `client_secret_basic` by default.
    public var clientAuth: ClientAuthentication
    /// Requested scopes, `openid profile email offline_access` by default.
    public var scopes: [String]
    /// Redirect URI path, `/signin-oidc` by default.
    public var callbackPath: String
    /// Post-logout redirect URI path, `/signout-callback-oidc` by default.
    public var postLogoutCallbackPath: String
    /// Extra static authorize parameters (e.g. Auth0's `audience`).
    public var authorizeParameters: [String: String]
    /// Forced end-session endpoint; nil = from discovery.
    public var endSessionEndpoint: String?
    /// Forced revocation endpoint; nil = from discovery or RFC 8414 metadata.
    public var revocationEndpoint: String?
    /// Pushed authorization requests: `auto` (when advertised) by default.
    public var usePAR: AutoSwitch
    /// RFC 9207 `iss` on the callback: `auto` (required when advertised) by default.
    public var requireIssParameter: AutoSwitch
    /// Accepted ID-token algorithms; `RS256 PS256 ES256 EdDSA` by default. `none` and HMAC are never accepted.
    public var signingAlgorithms: [String]
    /// Tolerated clock difference, 60 s by default.
    public var clockSkew: Duration
    /// Also fetch userinfo claims at login; off by default.
    public var fetchUserInfo: Bool
    /// Timeout of each back-channel call to the IdP, 10 s by default.
    public var requestTimeout: Duration

    /// Creates OIDC settings with the defaults.
    public init(
        issuer: String = "", clientID: String = "", clientSecret: String? = nil,
        clientAuth: ClientAuthentication = .clientSecretBasic,
        scopes: [String] = ["openid", "profile", "email", "offline_access"],
        callbackPath: String = "/signin-oidc", postLogoutCallbackPath: String = "/signout-callback-oidc",
        authorizeParameters: [String: String] = [:], endSessionEndpoint: String? = nil,
        revocationEndpoint: String? = nil, usePAR: AutoSwitch = .auto, requireIssParameter: AutoSwitch = .auto,
        signingAlgorithms: [String] = ["RS256", "PS256", "ES256", "EdDSA"], clockSkew: Duration = .seconds(60),
        fetchUserInfo: Bool = false, requestTimeout: Duration = .seconds(10)
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.clientAuth = clientAuth
        self.scopes = scopes
        self.callbackPath = callbackPath
        self.postLogoutCallbackPath = postLogoutCallbackPath
        self.authorizeParameters = authorizeParameters
        self.endSessionEndpoint = endSessionEndpoint
        self.revocationEndpoint = revocationEndpoint
        self.usePAR = usePAR
        self.requireIssParameter = requireIssParameter
        self.signingAlgorithms = signingAlgorithms
        self.clockSkew = clockSkew
        self.fetchUserInfo = fetchUserInfo
        self.requestTimeout = requestTimeout
    }
}

/// Where sessions live.
public struct SessionStoreKind: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable { case memory, cookie, sqlite, postgres }
    let base: Base
    /// In-process, lost on restart.
    public static let memory = SessionStoreKind(base: .memory)
    /// The whole session sealed into chunked cookies.
    public static let cookie = SessionStoreKind(base: .cookie)
    /// SQLite file (its own issue).
    public static let sqlite = SessionStoreKind(base: .sqlite)
    /// PostgreSQL (its own issue).
    public static let postgres = SessionStoreKind(base: .postgres)
    /// Parses the configuration name.
    public init?(name: String) {
        guard let base = Base(rawValue: name) else { return nil }
        self.base = base
    }
    init(base: Base) { self.base = base }
    /// Whether sessions are kept server-side (the cookie holds only a ticket).
    public var isServerSide: Bool { base != .cookie }
    /// The configuration name.
    public var description: String { base.rawValue }
}

/// `session:` settings.
public struct SessionConfiguration: Sendable {
    /// Store kind, `sqlite` by default (the gateway keeps it in `./bff-data/sessions.sqlite`).
    public var store: SessionStoreKind
    /// Session cookie name, `__Host-bff-session` by default.
    public var cookieName: String
    /// SameSite of the session cookie, Strict by default.
    public var sameSite: SameSite
    /// Must be true to allow `sameSite: none`.
    public var allowCrossSite: Bool
    /// Sliding idle timeout, 8 h by default.
    public var idleTimeout: Duration
    /// Absolute lifetime, 7 days by default.
    public var absoluteTimeout: Duration
    /// Interval of expired-session cleanup, 10 min by default.
    public var cleanupInterval: Duration
    /// Whether the `Secure` attribute is set (always true unless a test turns it off).
    public var secureCookies: Bool
    /// Path attribute of the session cookie, `/` (required by `__Host-`).
    public var cookiePath: String
    /// Domain attribute; nil (required by `__Host-`).
    public var cookieDomain: String?

    /// Creates session settings with the defaults.
    public init(
        store: SessionStoreKind = .sqlite, cookieName: String = "__Host-bff-session", sameSite: SameSite = .strict,
        allowCrossSite: Bool = false, idleTimeout: Duration = .seconds(8 * 3600),
        absoluteTimeout: Duration = .seconds(7 * 86400), cleanupInterval: Duration = .seconds(600),
        secureCookies: Bool = true, cookiePath: String = "/", cookieDomain: String? = nil
    ) {
        self.store = store
        self.cookieName = cookieName
        self.sameSite = sameSite
        self.allowCrossSite = allowCrossSite
        self.idleTimeout = idleTimeout
        self.absoluteTimeout = absoluteTimeout
        self.cleanupInterval = cleanupInterval
        self.secureCookies = secureCookies
        self.cookiePath = cookiePath
        self.cookieDomain = cookieDomain
    }
}

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
    /// Creates static settings with the defaults.
    public init(root: String? = nil, fallback: String = "index.html") {
        self.root = root
        self.fallback = fallback
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
