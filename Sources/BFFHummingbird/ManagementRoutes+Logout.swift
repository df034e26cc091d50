import BFFCore
import BFFOIDC
import Hummingbird
import Logging

extension BFF {
    /// `/bff/logout?sid=&returnUrl=`: ends the session here and at the IdP.
    func logout<Context: BFFRequestContext>(_ request: Request, context: Context) async -> Response {
        // A cross-site request ends nothing (beyond Duende): no forced logout from other sites.
        guard !isCrossSite(request) else { return BFFResponses.problem(.antiforgery) }
        guard let query = FormEncoding.firstValues(request.rawQuery) else { return BFFResponses.problem(.badRequest) }
        let returnURL = query["returnUrl"] ?? configuration.homePath
        guard ReturnURLValidator.isValid(returnURL) else { return BFFResponses.problem(.invalidReturnURL) }
        let cookieHeader = request.cookieHeader
        // The store cannot say which session this is: clearing the cookie would leave it alive.
        if context.bff.storeUnavailable { return BFFResponses.problem(.storeUnavailable) }
        guard let loaded = context.bff.session else {
            return BFFResponses.redirect(to: returnURL, cookies: sessions.clearingCookies(cookies: cookieHeader))
        }
        guard let sid = query["sid"], constantTimeEquals(sid, loaded.session.logoutID) else {
            return BFFResponses.problem(.invalidSID)
        }
        let session = loaded.session
        // Ended first: if the store fails nothing has changed yet (503, cookie kept, token not revoked).
        var cookies: [SetCookie]
        do {
            cookies = try await sessions.end(loaded, cookies: cookieHeader)
            metrics.sessionsEnded(.logout)
        } catch {
            context.logger.warning("logout: session store unavailable", metadata: ["bff.error": "\(error)"])
            return BFFResponses.problem(.storeUnavailable)
        }
        if configuration.tokens.revokeRefreshTokenOnLogout, let refreshToken = session.tokens.refreshToken,
            await provider.revocationEndpoint() != nil
        {
            do {
                try await tokens.revoke(token: refreshToken, hint: "refresh_token")
            } catch {
                context.logger.warning("logout: refresh token revocation failed", metadata: ["bff.error": "\(error)"])
            }
        }
        await publishPendingRevocations()  // cookie mode: the record is stored before we answer
        context.logger.info("logout: session ended")
        guard let endSession = await provider.endSessionEndpoint() else {
            return BFFResponses.redirect(to: returnURL, cookies: cookies)
        }
        let transaction = LogoutTransaction(
            state: random.token(byteCount: 24), returnURL: returnURL, createdAt: time.now)
        guard
            let sealed = try? sealer.sealToString(
                transaction.encoded(), purpose: .logoutTransaction, binding: logoutCookieName)
        else {
            return BFFResponses.redirect(to: returnURL, cookies: cookies)
        }
        var cookie = SetCookie(name: logoutCookieName, value: sealed, maxAge: LoginTransaction.lifetime, sameSite: .lax)
        cookie.secure = configuration.session.secureCookies
        cookies.append(cookie)
        var parameters: [(String, String)] = [
            ("post_logout_redirect_uri", postLogoutRedirectURI), ("client_id", configuration.oidc.clientID),
            ("state", transaction.state),
        ]
        if let idToken = session.tokens.idToken { parameters.insert(("id_token_hint", idToken), at: 0) }
        let separator = endSession.contains("?") ? "&" : "?"
        return BFFResponses.redirect(to: endSession + separator + FormEncoding.encode(parameters), cookies: cookies)
    }

    /// The post-logout callback: checks `state`, then goes to the stored return URL (or `/`).
    func postLogoutCallback<Context: BFFRequestContext>(_ request: Request, context: Context) -> Response {
        let expired = [expireCookie(logoutCookieName, sameSite: .lax)]
        guard let query = FormEncoding.firstValues(request.rawQuery), let state = query["state"],
            let value = request.cookieHeader.value(named: logoutCookieName),
            let plaintext = sealer.open(base64URL: value, purpose: .logoutTransaction, binding: logoutCookieName),
            let transaction = LogoutTransaction(encoded: plaintext),
            constantTimeEquals(transaction.state, state),
            time.now < transaction.createdAt + LoginTransaction.lifetime,
            ReturnURLValidator.isValid(transaction.returnURL)
        else {
            context.logger.info("post-logout callback without a matching logout transaction")
            return BFFResponses.redirect(to: configuration.homePath, cookies: expired)
        }
        return BFFResponses.redirect(to: transaction.returnURL, cookies: expired)
    }
}
