import BFFCore
import BFFOIDC
import Crypto
import Logging
import Synchronization

/// Keeps users' access tokens fresh: refreshes when they expire within `refreshBeforeExpiry`,
/// at most once per refresh token (single flight), and never replays a refresh token — a caller
/// that loaded the session before a refresh finished gets that refresh's result (IdPs such as
/// Glewlwyd and django-oauth-toolkit revoke the whole token family on replay).
final class UserTokenManager: Sendable {
    let tokens: TokenEndpointClient
    let sessions: SessionManager
    let freshness: TokenFreshness
    let time: any TimeSource
    let logger: Logger
    /// `oidc.dpop: required`.
    var requireDPoP: Bool { tokens.configuration.dpop == .required }
    /// Refreshes by hash of the refresh token they spend: one request each, and the result kept
    /// for ``recentLifetime`` so a caller holding the spent token gets it instead of replaying.
    private let flights: TokenFlights<[UInt8], TokenResponse>
    static let recentLifetime: Int64 = 120

    init(
        tokens: TokenEndpointClient, sessions: SessionManager, refreshBefore: Duration, time: any TimeSource,
        logger: Logger, metrics: BFFMetrics
    ) {
        self.metrics = metrics
        self.tokens = tokens
        self.sessions = sessions
        self.freshness = TokenFreshness(refreshBefore: refreshBefore.components.seconds)
        self.time = time
        self.logger = logger
        self.flights = TokenFlights(retention: Self.recentLifetime, time: time) { _, settledAt, now in
            now - settledAt < UserTokenManager.recentLifetime
        }
    }

    /// Number of refresh-token requests sent (metrics and tests).
    let refreshRequests = Mutex(0)
    let metrics: BFFMetrics
    /// One warning per distinct refresh failure cause and minute.
    let refreshWarnings = WarningThrottle(interval: 60)

    func accessToken(for loaded: inout LoadedSession, cookies: CookieHeader) async -> UserTokenOutcome {
        let now = time.now
        let current = loaded.session.tokens
        if let token = current.accessToken, freshness.isFresh(expiresAt: current.accessTokenExpiresAt, now: now) {
            return .token(token, cookies: [])
        }
        guard let refreshToken = current.refreshToken else {
            if let token = current.accessToken, let expiry = current.accessTokenExpiresAt, expiry > now {
                return .token(token, cookies: [])  // expiring soon, but nothing to refresh with: use it while valid
            }
            return .sessionEnded(cookies: await endSession(loaded, cookies: cookies))
        }
        let key = Array(SHA256.hash(data: Array(refreshToken.utf8)))
        let response: TokenResponse
        do {
            response = try await refreshed(key: key, refreshToken: refreshToken, loaded: loaded)
        } catch {
            return await failedRefresh(error, loaded: loaded, cookies: cookies)
        }
        apply(response, to: &loaded.session, now: now)
        if case .cookie = loaded.handle {
            let issued = (try? await sessions.save(&loaded, cookies: cookies)) ?? []
            return .token(response.accessToken, cookies: issued)
        }
        return .token(response.accessToken, cookies: [])
    }

    /// The refresh for `refreshToken`: a recent result, the one in flight, or a new request.
    ///
    /// Server-side sessions are refreshed inside the store's exclusive section for the session
    /// (a row lock with PostgreSQL, so across instances too): the freshest stored copy is read
    /// first, and if another request or instance already rotated the refresh token, its tokens are
    /// used and nothing is sent to the IdP.
    func refreshed(key: [UInt8], refreshToken: String, loaded: LoadedSession) async throws -> TokenResponse {
        let sessions = self.sessions
        return try await flights.value(key) {
            let response: TokenResponse
            if case .server = loaded.handle {
                let loadedAccessToken = loaded.session.tokens.accessToken
                let result = try await sessions.exclusively(loaded) { current -> (Session?, TokenResponse) in
                    let now = self.time.now
                    let stored = current.tokens
                    switch ExclusiveRefresh.decide(
                        stored: stored, planned: refreshToken, loadedAccessToken: loadedAccessToken, now: now)
                    {
                    case .useStored:
                        // Refreshed meanwhile (another request or instance): its result, never a replay.
                        return (
                            nil,
                            TokenResponse(
                                accessToken: stored.accessToken ?? "", tokenType: stored.tokenType,
                                expiresIn: stored.accessTokenExpiresAt.map { $0 - now },
                                refreshToken: stored.refreshToken, idToken: stored.idToken)
                        )
                    case .sessionGone:
                        throw SessionGone()
                    case .refresh(let storedRefreshToken):
                        let response = try await self.sendRefresh(storedRefreshToken, dpop: current.dpopKey)
                        try self.requireBinding(response, session: current)
                        var updated = current
                        self.apply(response, to: &updated, now: self.time.now)
                        return (updated, response)
                    }
                }
                guard let result else { throw SessionGone() }
                response = result
            } else {
                response = try await self.sendRefresh(refreshToken, dpop: loaded.session.dpopKey)
                try self.requireBinding(response, session: loaded.session)
            }
            return response
        }
    }

    /// What a failed refresh means: the session was ended meanwhile, or the IdP rejected the grant
    /// with `invalid_grant` (the session ends). Anything else — another OAuth error such as
    /// `invalid_client` after a secret rotation, a WAF's HTML 403, a proxy's 404, a 5xx, the
    /// network — says nothing about this user's grant: the session is kept (503 `idp-unavailable`),
    /// and one warning per distinct cause and minute tells the operator.
    func failedRefresh(_ error: any Error, loaded: LoadedSession, cookies: CookieHeader) async -> UserTokenOutcome {
        switch error {
        case is SessionGone:
            return .sessionEnded(cookies: sessions.clearingCookies(cookies: cookies))
        case let error as OIDCError where error.oauthCode == "invalid_grant":
            logger.info("token refresh rejected; ending the session", metadata: ["bff.error": "\(error)"])
            return .sessionEnded(cookies: await endSession(loaded, cookies: cookies))
        default:
            let cause = "\(error)"
            if refreshWarnings.admit(cause, now: time.now) {
                logger.warning(
                    "token refresh failed; sessions kept, callers get 503 idp-unavailable",
                    metadata: ["bff.error": .string(cause)])
            }
            return .idpUnavailable
        }
    }

    /// Ends a session whose grant is gone. If the store cannot delete it, the browser's copy is
    /// cleared anyway: the session cannot be used again (its refresh token is dead), and cleanup
    /// removes the record at its expiry.
    func endSession(_ loaded: LoadedSession, cookies: CookieHeader) async -> [SetCookie] {
        do {
            return try await sessions.end(loaded, cookies: cookies)
        } catch {
            logger.warning("ending a session: session store unavailable", metadata: ["bff.error": "\(error)"])
            return sessions.clearingCookies(cookies: cookies)
        }
    }

    /// Sends one refresh-token request (for `resource`, if any); counts it and its outcome.
    func sendRefresh(_ refreshToken: String, resource: String? = nil, dpop: DPoPKey?) async throws -> TokenResponse {
        refreshRequests.withLock { $0 += 1 }
        do {
            let response = try await tokens.refresh(refreshToken: refreshToken, resource: resource, dpop: dpop)
            metrics.tokenRefresh(.success)
            return response
        } catch let error as OIDCError where error.oauthCode == "invalid_grant" {
            metrics.tokenRefresh(.rejected)
            metrics.sessionsEnded(.refreshRejected)  // (``failedRefresh`` ends it, once per waiting call)
            throw error
        } catch let error as OIDCError where error.oauthCode == "invalid_target" || error.oauthCode == "invalid_scope" {
            metrics.tokenRefresh(.rejected)  // this resource only; the session stays
            throw error
        } catch {
            metrics.tokenRefresh(.idpUnavailable)
            throw error
        }
    }

    /// Token-exchange requests sent (tests).
    let exchangeRequests = Mutex(0)

    /// `oidc.dpop: required`: a refresh of a DPoP session that comes back unbound (`Bearer`) is
    /// a failure (the IdP stopped binding); its token is never used.
    func requireBinding(_ response: TokenResponse, session: Session) throws {
        guard requireDPoP, session.dpopKey != nil, !response.isDPoPBound else { return }
        logger.error("oidc.dpop is required but a refresh came back with an unbound (Bearer) token")
        throw OIDCError.unavailable("unbound token under oidc.dpop: required")
    }

    func apply(_ response: TokenResponse, to session: inout Session, now: UnixTime) {
        session.tokens.accessToken = response.accessToken
        session.tokens.accessTokenExpiresAt = response.expiresIn.map { now + $0 }
        if let tokenType = response.tokenType { session.tokens.tokenType = tokenType }
        if let rotated = response.refreshToken { session.tokens.refreshToken = rotated }
        if let idToken = response.idToken { session.tokens.idToken = idToken }
    }
}

/// The session was ended (logout, back-channel) while its tokens were being refreshed.
struct SessionGone: Error {}

/// A resource token was needed and the session holds no refresh token.
struct NoRefreshToken: Error {}
