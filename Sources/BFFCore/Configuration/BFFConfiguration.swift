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
    /// `logout:` — which logout channels are served.
    public var logout: LogoutConfiguration
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
    /// The name of the frontend this BFF serves when one process serves several (`frontends[].name`);
    /// nil for the only one. It is bound into everything the BFF seals (cookies, sessions at rest),
    /// so one frontend's session, login or logout cookie is anonymous on every other.
    public var frontend: String?
    /// Where the SPA lives: the default `returnUrl` of login and logout, and where the
    /// post-logout callback lands. `/`; a path-prefix frontend's is its prefix (`/docs/`).
    public var homePath = "/"

    /// Creates a configuration; every argument has the documented default.
    public init(
        server: ServerConfiguration = .init(),
        keys: [KeyRing.Key] = [],
        oidc: OIDCConfiguration = .init(),
        session: SessionConfiguration = .init(),
        tokens: TokenConfiguration = .init(),
        antiforgery: AntiForgeryConfiguration = .init(),
        logout: LogoutConfiguration = .init(),
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
        self.logout = logout
        self.user = user
        self.staticFiles = staticFiles
        self.admin = admin
        self.diagnostics = diagnostics
        self.managementPrefix = managementPrefix
        self.apis = apis
        self.frontend = nil
    }
}
