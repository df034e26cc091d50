import BFFCore
import BFFOIDC
import HTTPTypes
import Logging
import Tracing

/// A configured BFF: the session manager, the OIDC relying party and the policies, built once
/// and shared by the middleware and routes.
public struct BFF: Sendable {
    /// The configuration it was built from.
    public let configuration: BFFConfiguration
    /// Sessions (seal, open, store).
    public let sessions: SessionManager
    /// The IdP (metadata, keys).
    public let provider: OIDCProvider
    /// Token endpoint and friends.
    public let tokens: TokenEndpointClient
    /// ID-token validation.
    public let idTokens: IDTokenValidator
    /// Authorization requests.
    public let authorization: AuthorizationRequestBuilder
    /// The anti-forgery rule.
    public let antiForgery: AntiForgeryPolicy
    /// The anti-forgery header's name, parsed once (validation guarantees it is a valid token).
    let antiForgeryHeader: HTTPField.Name?
    /// Revocation records (cookie mode).
    public let revocations: RevocationList
    /// Sealing of login/logout transaction cookies.
    public let sealer: Sealer
    /// Login `state`s already used by a callback (single use, until the transaction would expire).
    let consumedStates: ReplayCache
    let userTokens: UserTokenManager
    /// Logout-token validation (back-channel logout).
    public let logoutTokens: LogoutTokenValidator
    /// Background refresh-token revocation; run it as a `Service` beside the application.
    public let revoker: RefreshTokenRevoker
    /// Where revocation records are shared with other instances (cookie mode), if anywhere.
    public let revocationFeed: (any SharedRevocationFeed)?
    let clientTokens: ClientTokenCache
    let time: any TimeSource
    let random: any SecureRandom
    let logger: Logger
    let excludedClaims: Set<String>
    /// Serialises publishing revocation records: a logout answers only once its record is stored,
    /// even when a concurrent logout took the queue first.
    let revocationPublishing = KeyedAsyncLock<Int>()
    /// Decides every API call, for every adapter (channel handler, middleware, WebSocket handshake).
    public let planner: APICallPlanner
    /// Told about every proxied API call, whichever pipeline served it (see ``APICallEvent``).
    public var apiCallObserver: APICallObserver?
    /// Where the BFF's metrics go (``BFFMetrics/disabled`` unless given).
    public let metrics: BFFMetrics
    /// The session store as the BFF uses it: measured and traced (when metrics or a tracer are
    /// set). Readiness probes and cleanup should call this one, so their calls count too.
    public let sessionStore: (any SessionStore)?
    /// Where the access log goes, one line per request (none unless given).
    public let accessLogger: Logger?
    /// Where spans go (none unless given): a server span per request, client spans for upstream
    /// and identity-provider calls, which also receive `traceparent`.
    public let tracer: (any Tracer)?

    /// The public origin (`scheme://host[:port]`).
    public let publicOrigin: String
    /// The redirect URI registered at the IdP.
    public var redirectURI: String { publicOrigin + configuration.oidc.callbackPath }
    /// The post-logout redirect URI registered at the IdP.
    public var postLogoutRedirectURI: String { publicOrigin + configuration.oidc.postLogoutCallbackPath }
    /// Refresh-token requests this BFF has sent (tests, metrics).
    public var refreshRequestCount: Int { userTokens.refreshRequests.withLock { $0 } }
    /// Client-credentials requests this BFF has sent (tests, metrics).
    public var clientCredentialsRequestCount: Int { clientTokens.requests.withLock { $0 } }

    /// Prefix of login transaction cookie names (one of several frontends adds its name: its
    /// pending logins are its own to count, evict and consume).
    public var loginCookiePrefix: String {
        Self.loginCookiePrefix(secure: configuration.session.secureCookies)
            + (configuration.frontend.map { $0 + "." } ?? "")
    }
    /// Name of the logout transaction cookie (with the frontend's name for one of several, so
    /// logouts on two frontends of one host do not overwrite each other's).
    public var logoutCookieName: String {
        Self.logoutCookieName(secure: configuration.session.secureCookies)
            + (configuration.frontend.map { "." + $0 } ?? "")
    }

    static func loginCookiePrefix(secure: Bool) -> String { secure ? "__Host-bff-login." : "bff-login." }
    static func logoutCookieName(secure: Bool) -> String { secure ? "__Host-bff-logout" : "bff-logout" }

    /// Builds a BFF. `keyRing` must be non-empty; `store` is required for server-side modes.
    /// - Throws: ``BFFSetupError`` listing every configuration problem.
    public init(
        configuration: BFFConfiguration, keyRing: KeyRing, http: any OIDCHTTPClient, store: (any SessionStore)?,
        revocationFeed: (any SharedRevocationFeed)? = nil, time: any TimeSource = SystemTimeSource(),
        random: any SecureRandom = SystemSecureRandom(), logger: Logger = Logger(label: "bff"),
        metrics: BFFMetrics = .disabled, accessLogger: Logger? = nil, tracer: (any Tracer)? = nil,
        shared: BFFSharedState? = nil, tokenRetrievers: [String: any TokenRetriever] = [:]
    ) throws {
        let problems = configuration.validate().filter { !$0.path.hasPrefix("keys") }
        if !problems.isEmpty { throw BFFSetupError(problems: problems) }
        if configuration.session.store.isServerSide && store == nil {
            throw BFFSetupError(problems: [
                .init(path: "session.store", message: "no store was given", fix: "pass a SessionStore")
            ])
        }
        let routePaths = Set(configuration.apis.map(\.path))
        if let stray = tokenRetrievers.keys.sorted().first(where: { !routePaths.contains($0) }) {
            throw BFFSetupError(problems: [
                .init(
                    path: "tokenRetrievers", message: "'\(stray)' is not the path of a configured route",
                    fix: "key each retriever by its route's path, as in apis[].path")
            ])
        }
        self.configuration = configuration
        self.metrics = metrics
        self.accessLogger = accessLogger
        self.tracer = tracer
        let http: any OIDCHTTPClient = tracer.map { TracingOIDCHTTPClient(base: http, tracer: $0) } ?? http
        self.time = time
        self.random = random
        self.logger = logger
        self.sealer = Sealer(keyRing: keyRing, random: random, partition: configuration.frontend ?? "")
        self.revocations =
            shared?.revocations
            ?? RevocationList(
                retention: configuration.session.absoluteTimeout.components.seconds, shared: revocationFeed != nil)
        self.consumedStates = shared?.consumedStates ?? ReplayCache()
        self.revocationFeed = revocationFeed
        // Every store operation measured (and traced inside a traced request).
        let observed = metrics !== BFFMetrics.disabled || tracer != nil
        let observedStore: (any SessionStore)? =
            observed ? store.map { ObservedSessionStore($0, metrics: metrics, tracer: tracer) } : store
        self.sessionStore = observedStore
        self.sessions = SessionManager(
            configuration: configuration.session, sealer: sealer, store: observedStore, revocations: revocations,
            time: time, random: random)
        self.provider = OIDCProvider(configuration: configuration.oidc, http: http, time: time, logger: logger)
        self.tokens = TokenEndpointClient(provider: provider, http: http, configuration: configuration.oidc)
        self.idTokens = IDTokenValidator(
            verifier: JWSVerifier(provider: provider, allowedAlgorithms: configuration.oidc.signingAlgorithms),
            issuer: configuration.oidc.issuer, clientID: configuration.oidc.clientID,
            clockSkew: configuration.oidc.clockSkew, time: time)
        self.authorization = AuthorizationRequestBuilder(configuration: configuration.oidc, tokens: tokens)
        self.userTokens = UserTokenManager(
            tokens: tokens, sessions: sessions, refreshBefore: configuration.tokens.refreshBeforeExpiry, time: time,
            logger: logger, metrics: metrics)
        self.clientTokens = ClientTokenCache(tokens: tokens, time: time, metrics: metrics)
        self.revoker = RefreshTokenRevoker(tokens: tokens, logger: logger)
        self.logoutTokens = LogoutTokenValidator(
            verifier: JWSVerifier(provider: provider, allowedAlgorithms: configuration.oidc.signingAlgorithms),
            issuer: configuration.oidc.issuer, clientID: configuration.oidc.clientID,
            clockSkew: configuration.oidc.clockSkew, time: time, replays: ReplayCache())
        let origin =
            WebURL(configuration.server.effectivePublicOrigin)?.origin ?? configuration.server.effectivePublicOrigin
        self.publicOrigin = origin
        self.antiForgery = AntiForgeryPolicy(configuration: configuration.antiforgery, publicOrigin: origin)
        self.antiForgeryHeader = HTTPField.Name(configuration.antiforgery.headerName)
        self.excludedClaims = Set(configuration.user.excludeClaims)
        let secureCookies = configuration.session.secureCookies
        self.planner = APICallPlanner(
            routes: configuration.apis, sessions: sessions,
            tokens: BFFTokenSource(users: userTokens, clients: clientTokens, retrievers: tokenRetrievers),
            antiForgery: antiForgery,
            headerPolicy: HeaderPolicy(
                antiForgeryHeader: configuration.antiforgery.headerName,
                bffCookiePrefixes: [
                    configuration.session.cookieName, Self.loginCookiePrefix(secure: secureCookies),
                    Self.logoutCookieName(secure: secureCookies),
                ] + configuration.session.siblingCookieNames),
            trustedProxies: configuration.server.trustedProxies.compactMap(IPAddressRange.init), publicOrigin: origin,
            logger: logger, random: random, requireDPoP: configuration.oidc.dpop == .required)
    }
}

/// What outlives one ``BFF``: the BFFs of one process's frontends share it, and so do the BFFs a
/// configuration reload puts in place of others — so neither a second frontend nor a reload
/// forgets a cookie-mode revocation record or a login `state` already used.
public final class BFFSharedState: Sendable {
    /// Revocation records (cookie mode), keyed by issuer and session: safe to share.
    public let revocations: RevocationList
    /// Consumed login `state`s (random, so one cache serves every frontend).
    let consumedStates = ReplayCache()

    /// Records kept for `retention` (the absolute session lifetime), queued for a shared feed
    /// when `published`.
    public init(retention: Duration, published: Bool) {
        self.revocations = RevocationList(retention: retention.components.seconds, shared: published)
    }
}

/// The configuration cannot run; every problem is listed.
public struct BFFSetupError: Error, CustomStringConvertible {
    /// The problems found.
    public let problems: [ConfigurationProblem]
    /// One problem per line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
