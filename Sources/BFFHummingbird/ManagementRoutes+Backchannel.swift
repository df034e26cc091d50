import BFFCore
import BFFOIDC
import Hummingbird
import Logging
import NIOCore

extension BFF {
    /// `POST /bff/backchannel`: OIDC Back-Channel Logout (SPEC §7). Answers 200 with an empty body or
    /// 400 `{"error":"invalid_request"}`; never waits on the IdP beyond one rate-limited JWKS refetch.
    func backchannel(_ request: Request, logger: Logger) async -> Response {
        func refuse(_ reason: String, _ outcome: BFFMetrics.BackchannelOutcome = .invalidToken) -> Response {
            metrics.backchannelLogout(outcome)
            logger.warning("back-channel logout refused", metadata: ["bff.reason": .string(reason)])
            return Response(
                status: .badRequest, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "{\"error\":\"invalid_request\"}")))
        }
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true else {
            return refuse("not a form post")
        }
        guard let body = try? await request.body.collect(upTo: 64 * 1024) else { return refuse("body too large") }
        guard let fields = FormEncoding.decode(Array(body.readableBytesView)) else { return refuse("malformed form") }
        let tokens = fields.filter { $0.name == "logout_token" }
        guard tokens.count == 1, let token = tokens.first?.value, !token.isEmpty else {
            return refuse("no single logout_token")
        }
        let logout: LogoutRequest
        do {
            logout = try await logoutTokens.validate(token)
        } catch let error as OIDCError where error.isUnavailable {
            return refuse("\(error)", .unavailable)  // (SPEC §7: 200 or 400; the IdP may send it again)
        } catch {
            return refuse("\(error)")
        }
        do {
            let ended = try await sessions.endSessions(
                issuer: configuration.oidc.issuer, idpSessionID: logout.sid,
                subject: logout.sid == nil ? logout.sub : nil)
            if configuration.tokens.revokeRefreshTokenOnLogout { revoker.enqueue(sessions.refreshTokens(of: ended)) }
            await publishPendingRevocations()
            logger.info("back-channel logout", metadata: ["bff.sessions_ended": "\(ended.count)"])
            metrics.backchannelLogout(.success)
            metrics.sessionsEnded(.backchannel, count: ended.count)
        } catch {
            metrics.backchannelLogout(.unavailable)
            logger.error("back-channel logout: session store failed", metadata: ["bff.error": "\(error)"])
            return Response(status: .serviceUnavailable, headers: [.cacheControl: "no-store"])
        }
        return Response(status: .ok, headers: [.cacheControl: "no-store"])
    }

    /// `GET /bff/frontchannel?iss=&sid=`: ends the sessions of that IdP session (front-channel logout).
    func frontchannel(_ request: Request, logger: Logger) async -> Response {
        var page = BFFResponses.html(
            "<!doctype html><html><head><meta charset=\"utf-8\"></head><body></body></html>", status: .ok)
        // The IdP's logout page loads this in an iframe: let exactly the issuer's origin frame it.
        let issuerOrigin = WebURL(configuration.oidc.issuer)?.origin ?? "'none'"
        page.headers[.contentSecurityPolicy] =
            "default-src 'none'; frame-ancestors 'self' \(issuerOrigin); base-uri 'none'; form-action 'none'"
        guard let query = FormEncoding.firstValues(request.rawQuery), let sid = query["sid"], !sid.isEmpty,
            query["iss"] == configuration.oidc.issuer
        else {
            logger.info("front-channel logout ignored: missing or foreign iss/sid")
            return page
        }
        do {
            let ended = try await sessions.endSessions(
                issuer: configuration.oidc.issuer, idpSessionID: sid, subject: nil)
            metrics.sessionsEnded(.frontchannel, count: ended.count)
            if configuration.tokens.revokeRefreshTokenOnLogout { revoker.enqueue(sessions.refreshTokens(of: ended)) }
        } catch {
            logger.error("front-channel logout: session store failed", metadata: ["bff.error": "\(error)"])
        }
        return page
    }
}
