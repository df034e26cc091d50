import BFFCore
import BFFOIDC
import HTTPTypes
import Hummingbird
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension BFF {
    /// The callback (`oidc.callbackPath`): finishes the login.
    func callback<Context: BFFRequestContext>(_ request: Request, context: Context) async -> Response {
        let correlationID = random.token(byteCount: 9)
        var logger = context.logger
        logger[metadataKey: "bff.correlation_id"] = .string(correlationID)
        // Once the transaction is proven ours: a top-level silent login never ends on an error page.
        var silentReturnURL: String?
        func fail(
            _ reason: String, _ outcome: BFFMetrics.LoginOutcome, status: HTTPResponse.Status = .badRequest,
            cookies: [SetCookie] = []
        ) -> Response {
            metrics.login(outcome)
            logger.warning("login callback refused", metadata: ["bff.reason": .string(reason)])
            if let silentReturnURL {
                return BFFResponses.redirect(
                    to: Self.appending("bff-login=none", to: silentReturnURL), cookies: cookies)
            }
            return BFFResponses.loginError(status: status, correlationID: correlationID, cookies: cookies)
        }
        guard let query = FormEncoding.firstValues(request.rawQuery) else {
            return fail("malformed query", .invalidCallback)
        }
        guard let state = query["state"], !state.isEmpty, state.utf8.count <= 512 else {
            return fail("no state", .invalidCallback)
        }
        let name = loginCookiePrefix + LoginTransaction.cookieID(forState: state)
        let consumed = [expireCookie(name, sameSite: .lax)]
        let now = time.now
        guard let value = request.cookieHeader.value(named: name),
            let plaintext = sealer.open(base64URL: value, purpose: .loginTransaction, binding: name),
            let transaction = LoginTransaction(encoded: plaintext)
        else { return fail("no matching login transaction", .state, cookies: consumed) }
        guard constantTimeEquals(transaction.state, state) else {
            return fail("state mismatch", .state, cookies: consumed)
        }
        guard !transaction.isExpired(now: now) else {
            return fail("login transaction expired", .state, cookies: consumed)
        }
        guard transaction.issuer == configuration.oidc.issuer else {
            return fail("issuer changed", .state, cookies: consumed)
        }
        guard consumedStates.insert(state, until: transaction.createdAt + LoginTransaction.lifetime, now: now)
        else {
            return fail("login transaction replayed", .state, cookies: consumed)
        }
        if transaction.topLevelSilent { silentReturnURL = transaction.returnURL }
        let metadata: ProviderMetadata
        do {
            metadata = try await provider.metadata()
        } catch {
            return fail(
                "identity provider unavailable", .idpUnavailable, status: .serviceUnavailable, cookies: consumed)
        }
        // RFC 9207
        if let iss = query["iss"] {
            guard iss == configuration.oidc.issuer else {
                return fail("iss parameter mismatch", .iss, cookies: consumed)
            }
        } else if configuration.oidc.requireIssParameter.isEnabled(
            advertised: metadata.authorizationResponseIssParameterSupported ?? false)
        {
            return fail("iss parameter missing", .iss, cookies: consumed)
        }
        if let error = query["error"] {
            let silentFailures: Set<String> = [
                "login_required", "consent_required", "interaction_required", "account_selection_required",
            ]
            if transaction.prompt == "none" && silentFailures.contains(error) {
                metrics.login(.silentNone)
                if let silentReturnURL {
                    return BFFResponses.redirect(
                        to: Self.appending("bff-login=none", to: silentReturnURL), cookies: consumed)
                }
                return silentLoginPage(isLoggedIn: false, cookies: consumed)
            }
            let safeCode =
                error.utf8.count <= 64
                && error.utf8.allSatisfy { $0 == UInt8(ascii: "_") || ($0 >= 0x61 && $0 <= 0x7A) }
            return fail(
                "identity provider returned error \(safeCode ? error : "(unprintable)")", .idpError, cookies: consumed)
        }
        guard let code = query["code"], !code.isEmpty, code.utf8.count <= 4096 else {
            return fail("no code", .invalidCallback, cookies: consumed)
        }

        let tokenResponse: TokenResponse
        do {
            tokenResponse = try await tokens.exchange(
                code: code, codeVerifier: transaction.codeVerifier, redirectURI: redirectURI,
                dpop: transaction.dpopKey)
        } catch let error as OIDCError {
            return fail(
                "code exchange failed: \(error)", error.isUnavailable ? .idpUnavailable : .tokenEndpoint,
                status: error.isUnavailable ? .serviceUnavailable : .badRequest, cookies: consumed)
        } catch {
            return fail("code exchange failed", .idpUnavailable, status: .serviceUnavailable, cookies: consumed)
        }
        guard let idToken = tokenResponse.idToken else {
            return fail("no id_token in token response", .idToken, cookies: consumed)
        }
        // RFC 9449 §5: a Bearer answer to a DPoP request means an IdP that does not bind tokens.
        let bound = tokenResponse.isDPoPBound
        if transaction.dpopKey != nil, !bound, configuration.oidc.dpop == .required {
            return fail(
                "oidc.dpop is required but the IdP issued an unbound (Bearer) token", .tokenEndpoint,
                cookies: consumed)
        }
        var claimsJSON: [UInt8]
        var claims: [String: JSONValue]
        do {
            let verified = try await idTokens.validate(idToken, expectedNonce: transaction.nonce)
            claimsJSON = verified.payloadJSON
            claims = verified.claims
        } catch let error as OIDCError {
            return fail(
                "ID token rejected: \(error)", error.isUnavailable ? .idpUnavailable : .idToken,
                status: error.isUnavailable ? .serviceUnavailable : .badRequest, cookies: consumed)
        } catch {
            return fail("ID token rejected", .idToken, cookies: consumed)
        }
        guard let subject = claims["sub"]?.stringValue else { return fail("no sub", .idToken, cookies: consumed) }
        // Step-up: what was asked for must be in the (signed) ID token; an IdP that answers with a
        // weaker or older authentication does not get a session that claims the stronger one.
        let acr = claims["acr"]?.stringValue
        let skew = configuration.oidc.clockSkew.components.seconds
        let authTime = StepUp.plausibleAuthTime(claims["auth_time"]?.int64Value, now: now, skew: skew)
        if !transaction.acrValues.isEmpty, !(acr.map(transaction.acrValues.contains) ?? false) {
            return fail(
                "acr \(acr.map { StepUp.isValidACR($0) ? $0 : "(unprintable)" } ?? "missing") is not one of "
                    + "the requested \(transaction.acrValues)", .idToken, cookies: consumed)
        }
        if let maxAge = transaction.maxAge {
            guard StepUp.isRecent(authTime, maxAge: maxAge, now: now, skew: skew) else {
                return fail("auth_time missing or older than max_age \(maxAge)", .idToken, cookies: consumed)
            }
        }
        if configuration.oidc.fetchUserInfo {
            // Userinfo only adds claims: the login goes on without them, but says why.
            do {
                let userInfo = try await tokens.userInfo(
                    accessToken: tokenResponse.accessToken, dpop: bound ? transaction.dpopKey : nil)
                if userInfo["sub"]?.stringValue == subject {
                    for (key, value) in userInfo where claims[key] == nil { claims[key] = value }
                    if let merged = try? JSONEncoder().encode(claims) { claimsJSON = Array(merged) }
                } else {
                    logger.warning("userinfo ignored: its sub is not the ID token's")
                }
            } catch {
                logger.warning(
                    "userinfo failed; the login goes on without its claims", metadata: ["bff.error": "\(error)"])
            }
        }
        let idpSessionID = claims["sid"]?.stringValue
        var session = Session(
            issuer: configuration.oidc.issuer, subject: subject, idpSessionID: idpSessionID,
            logoutID: idpSessionID ?? random.token(byteCount: 16), claimsJSON: claimsJSON,
            sessionState: query["session_state"],
            tokens: TokenSet(
                accessToken: tokenResponse.accessToken,
                accessTokenExpiresAt: tokenResponse.expiresIn.map { now + $0 }, tokenType: tokenResponse.tokenType,
                refreshToken: tokenResponse.refreshToken, idToken: idToken),
            createdAt: now, renewedAt: now)
        session.dpopKey = bound ? transaction.dpopKey : nil
        session.authenticationContext = acr.flatMap { StepUp.isValidACR($0) ? $0 : nil }
        session.authTime = authTime
        let sessionCookies: [SetCookie]
        do {
            sessionCookies = try await sessions.create(
                session, replacing: context.bff.session, cookies: request.cookieHeader)
        } catch let error as SessionError where error.isTooLargeForCookies {
            return fail(error.description, .sessionStore, cookies: consumed)
        } catch {
            return fail("session store unavailable", .sessionStore, status: .serviceUnavailable, cookies: consumed)
        }
        logger.info("login succeeded")
        metrics.login(.success)
        metrics.sessionStarted()
        if transaction.topLevelSilent {
            return BFFResponses.redirect(
                to: Self.appending("bff-login=success", to: transaction.returnURL), cookies: consumed + sessionCookies)
        }
        if transaction.prompt == "none" { return silentLoginPage(isLoggedIn: true, cookies: consumed + sessionCookies) }
        return BFFResponses.redirect(to: transaction.returnURL, cookies: consumed + sessionCookies)
    }
}
