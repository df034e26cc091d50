import BFFCore
import BFFOIDC

/// Tokens the session holds beside its own access token: per RFC 8707 resource and per RFC 8693
/// exchange; both kept until due and obtained in the session's exclusive section.
extension UserTokenManager {
    /// The access token for `resource` (RFC 8707): the one held in the session while it is not due
    /// for refresh, else a new one from the refresh-token grant with `resource=`, stored in the
    /// session next to its other tokens (a rotated refresh token too).
    ///
    /// Server-side sessions only (configuration validation refuses `resource` on user routes in
    /// cookie mode): the grant runs in the session's exclusive section — the same one every other
    /// refresh of the session runs in, across instances with PostgreSQL — on the freshest stored
    /// copy, so it never spends a refresh token another refresh already spent, and N concurrent
    /// calls cause one request (the others find the new token stored).
    func accessToken(for loaded: inout LoadedSession, cookies: CookieHeader, resource: String) async
        -> UserTokenOutcome
    {
        let freshness = self.freshness
        let held = loaded.session.tokens.token(for: resource)
        if let held, freshness.isFresh(expiresAt: held.expiresAt, now: time.now) {
            return .token(held.accessToken, cookies: [])
        }
        guard case .server = loaded.handle else { return .resourceRefused }
        let token: ResourceToken?
        do {
            token = try await heldToken(resource, loaded: loaded, rotatesRefreshToken: true) { current in
                guard let refreshToken = current.tokens.refreshToken else { throw NoRefreshToken() }
                return try await self.sendRefresh(refreshToken, resource: resource, dpop: current.dpopKey)
            }
        } catch is NoRefreshToken {
            if let held, let expiry = held.expiresAt, expiry > time.now { return .token(held.accessToken, cookies: []) }
            return .resourceRefused
        } catch let error as OIDCError where error.oauthCode == "invalid_target" || error.oauthCode == "invalid_scope" {
            logger.warning(
                "the identity provider refused a token for the route's resource",
                metadata: ["bff.resource": .string(resource), "bff.error": "\(error)"])
            return .resourceRefused
        } catch {
            return await failedRefresh(error, loaded: loaded, cookies: cookies)
        }
        guard let token else { return .sessionEnded(cookies: sessions.clearingCookies(cookies: cookies)) }
        loaded.session.tokens.store(token)
        return .token(token.accessToken, cookies: [])
    }

    /// The token `exchange` gives for the session's access token (RFC 8693), held in the session
    /// beside its resource tokens until it is due (so it is dropped with the session at logout).
    ///
    /// Server-side sessions only (validation refuses `token: exchange` in cookie mode). The
    /// subject token is refreshed first when due; the exchange runs in the session's exclusive
    /// section on the freshest stored copy, so N concurrent calls cause one exchange.
    func exchangedToken(for loaded: inout LoadedSession, cookies: CookieHeader, exchange: TokenExchange) async
        -> UserTokenOutcome
    {
        let key = exchange.sessionKey
        let freshness = self.freshness
        if let held = loaded.session.tokens.token(for: key), freshness.isFresh(expiresAt: held.expiresAt, now: time.now)
        {
            return .token(held.accessToken, cookies: [])
        }
        guard case .server = loaded.handle else { return .resourceRefused }
        let subject = await accessToken(for: &loaded, cookies: cookies)
        guard case .token = subject else { return subject }
        let token: ResourceToken?
        do {
            // An exchange's own refresh token (if any) is not the session's: it is not kept.
            token = try await heldToken(key, loaded: loaded, rotatesRefreshToken: false) { current in
                guard let subjectToken = current.tokens.accessToken else { throw NoRefreshToken() }
                self.exchangeRequests.withLock { $0 += 1 }
                return try await self.tokens.exchange(
                    subjectToken: subjectToken, audience: exchange.audience, scopes: exchange.scopes,
                    resource: exchange.resource, dpop: current.dpopKey)
            }
        } catch is NoRefreshToken {
            return .resourceRefused
        } catch let error as OIDCError where error.oauthCode != nil {
            logger.warning(
                "the identity provider refused the token exchange",
                metadata: ["bff.audience": .string(exchange.audience ?? ""), "bff.error": "\(error)"])
            return .resourceRefused
        } catch is SessionGone {
            return .sessionEnded(cookies: sessions.clearingCookies(cookies: cookies))
        } catch {
            logger.warning("token exchange failed", metadata: ["bff.error": "\(error)"])
            return .idpUnavailable
        }
        guard let token else { return .sessionEnded(cookies: sessions.clearingCookies(cookies: cookies)) }
        loaded.session.tokens.store(token)
        return .token(token.accessToken, cookies: [])
    }

    /// The one rule for tokens held in the session beside its access token (RFC 8707 resource
    /// tokens, RFC 8693 exchanged tokens): inside the session's exclusive section, a fresh token
    /// stored meanwhile (by another request or instance) is used; otherwise `obtain` asks the IdP
    /// with the freshest stored session, and the answer — bound as `oidc.dpop` demands — is stored
    /// under `key` (with a rotated refresh token when `rotatesRefreshToken`). Nil: the session ended.
    func heldToken(
        _ key: String, loaded: LoadedSession, rotatesRefreshToken: Bool,
        obtain: @escaping @Sendable (Session) async throws -> TokenResponse
    ) async throws -> ResourceToken? {
        let freshness = self.freshness
        return try await sessions.exclusively(loaded) { current -> (Session?, ResourceToken) in
            if let stored = current.tokens.token(for: key),
                freshness.isFresh(expiresAt: stored.expiresAt, now: self.time.now)
            {
                return (nil, stored)
            }
            let response = try await obtain(current)
            try self.requireBinding(response, session: current)
            let token = ResourceToken(
                resource: key, accessToken: response.accessToken,
                expiresAt: response.expiresIn.map { self.time.now + $0 }, tokenType: response.tokenType)
            var updated = current
            updated.tokens.store(token)
            if rotatesRefreshToken, let rotated = response.refreshToken { updated.tokens.refreshToken = rotated }
            return (updated, token)
        }
    }
}
