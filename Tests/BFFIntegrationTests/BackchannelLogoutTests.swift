import BFFCore
import BFFOIDC
import BFFTesting
import Crypto
import Foundation
import Testing

@testable import BFFGateway

@Suite("Back-channel and front-channel logout (SPEC §7)")
struct BackchannelLogoutTests {
    static let event = "http://schemas.openid.net/event/backchannel-logout"

    func claims(_ env: TestEnvironment, sid: String?, _ changes: [String: JSONValue?] = [:]) -> [String: JSONValue] {
        let now = SystemTimeSource().now
        var claims: [String: JSONValue] = [
            "iss": .string(env.issuer), "aud": "bff-demo", "iat": .int(now), "jti": .string(UUID().uuidString),
            "events": .object([Self.event: .object([:])]), "sub": "alice-7f3b",
        ]
        if let sid { claims["sid"] = .string(sid) }
        for (key, value) in changes { claims[key] = value }
        return claims
    }

    func post(_ env: TestEnvironment, _ browser: TestBrowser, token: String) async throws -> TestBrowser.Page {
        try await browser.request(
            "POST", env.origin + "/bff/backchannel", headers: [("content-type", "application/x-www-form-urlencoded")],
            body: Array(FormEncoding.encode([("logout_token", token)]).utf8), sendCookies: false)
    }

    /// Logs in and returns the IdP `sid` of the session.
    func loggedIn(_ env: TestEnvironment, _ browser: TestBrowser) async throws -> String {
        try await env.login(browser)
        return try #require(TestEnvironment.query(try await env.logoutURL(browser))["sid"])
    }

    @Test func validTokenBySidEndsTheSession() async throws {
        try await TestEnvironment.run { env, browser in
            let sid = try await loggedIn(env, browser)
            let page = try await post(env, browser, token: try env.idp.keys.sign(claims: claims(env, sid: sid)))
            #expect(page.status == 200)
            #expect(page.body.isEmpty)
            #expect(page.header("cache-control") == "no-store")
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func devIdPFrontChannelIframeAloneEndsTheSession() async throws {
        // Back-channel delivery switched off at the IdP: only the iframe on its logout page remains.
        try await TestEnvironment.run(
            configure: { $0.logout.frontChannel = true }, configureIdP: { $0.clients[0].backchannelLogoutURI = nil }
        ) { env, browser in
            let sid = try await loggedIn(env, browser)
            // Logout started at the IdP (not at the BFF): end_session with the IdP's own cookie.
            let idpLogout = try await browser.get(env.issuer + "/end_session")
            #expect(idpLogout.status == 200)
            #expect(try await env.user(browser).status == 200, "nothing ended yet: the iframe has not loaded")
            let frame = try #require(TestEnvironment.extract("<iframe src=\"", from: idpLogout.body))
                .replacingOccurrences(of: "&amp;", with: "&")
            #expect(TestEnvironment.query(frame)["sid"] == sid)
            #expect(TestEnvironment.query(frame)["iss"] == env.issuer)
            let page = try await browser.request("GET", frame, sendCookies: false)  // cross-site iframe: no cookie
            #expect(page.status == 200)
            #expect(page.header("content-security-policy")?.contains("frame-ancestors 'self' \(env.issuer)") == true)
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func validTokenBySubEndsTheSession() async throws {
        try await TestEnvironment.run { env, browser in
            _ = try await loggedIn(env, browser)
            let page = try await post(env, browser, token: try env.idp.keys.sign(claims: claims(env, sid: nil)))
            #expect(page.status == 200)
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func logoutTypAndMultiAudienceAreAccepted() async throws {
        try await TestEnvironment.run { env, browser in
            let sid = try await loggedIn(env, browser)
            let token = try env.idp.keys.sign(
                claims: claims(env, sid: sid, ["aud": .array(["other", "bff-demo"])]), type: "logout+jwt")
            #expect(try await post(env, browser, token: token).status == 200)
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func replayIsRefused() async throws {
        try await TestEnvironment.run { env, browser in
            let sid = try await loggedIn(env, browser)
            let token = try env.idp.keys.sign(claims: claims(env, sid: sid))
            #expect(try await post(env, browser, token: token).status == 200)
            let replay = try await post(env, browser, token: token)
            #expect(replay.status == 400)
            #expect(replay.body == "{\"error\":\"invalid_request\"}")
        }
    }

    enum Violation: String, CaseIterable, Sendable {
        case wrongIssuer, wrongAudience, missingIat, futureIat, staleIat, expired, missingJti, missingEvents
        case eventNotAnObject, noncePresent, neitherSidNorSub, wrongTyp, algNone, hs256WithPublicKey, unknownKid
        case garbage, tamperedSignature

        /// The check that must refuse it (the validator's reason).
        var reason: String {
            switch self {
            case .wrongIssuer: "iss does not match"
            case .wrongAudience: "aud does not contain the client id"
            case .missingIat: "iat missing"
            case .futureIat: "issued in the future"
            case .staleIat: "issued too long ago"
            case .expired: "expired"
            case .missingJti: "jti missing"
            case .missingEvents, .eventNotAnObject: "events lacks the back-channel logout event"
            case .noncePresent: "nonce present"
            case .neitherSidNorSub: "neither sid nor sub"
            case .wrongTyp: "typ is not JWT or logout+jwt"
            case .algNone: "algorithm none is not accepted"
            case .hs256WithPublicKey: "algorithm HS256 is not accepted"
            case .unknownKid: "no current key matches the token's kid and alg"
            case .garbage: "malformed header or payload"
            case .tamperedSignature: "signature verification failed"
            }
        }
    }

    func token(_ violation: Violation, env: TestEnvironment, sid: String) throws -> String {
        let now = SystemTimeSource().now
        let keys = env.idp.keys
        switch violation {
        case .wrongIssuer: return try keys.sign(claims: claims(env, sid: sid, ["iss": "http://127.0.0.1:1"]))
        case .wrongAudience: return try keys.sign(claims: claims(env, sid: sid, ["aud": "someone-else"]))
        case .missingIat: return try keys.sign(claims: claims(env, sid: sid, ["iat": nil]))
        case .futureIat: return try keys.sign(claims: claims(env, sid: sid, ["iat": .int(now + 600)]))
        case .staleIat: return try keys.sign(claims: claims(env, sid: sid, ["iat": .int(now - 3600)]))
        case .expired: return try keys.sign(claims: claims(env, sid: sid, ["exp": .int(now - 120)]))
        case .missingJti: return try keys.sign(claims: claims(env, sid: sid, ["jti": nil]))
        case .missingEvents: return try keys.sign(claims: claims(env, sid: sid, ["events": nil]))
        case .eventNotAnObject:
            return try keys.sign(claims: claims(env, sid: sid, ["events": .object([Self.event: "yes"])]))
        case .noncePresent: return try keys.sign(claims: claims(env, sid: sid, ["nonce": "n"]))
        case .neitherSidNorSub: return try keys.sign(claims: claims(env, sid: nil, ["sub": nil]))
        case .wrongTyp: return try keys.sign(claims: claims(env, sid: sid), type: "at+jwt")
        case .algNone:
            let header = Base64URL.encode(Array(#"{"alg":"none"}"#.utf8))
            // A signature part, so it is the algorithm that is refused, not the token's shape.
            return header + "." + Base64URL.encode(Array(try JSONEncoder().encode(claims(env, sid: sid)))) + ".AAAA"
        case .hs256WithPublicKey:
            let header = Base64URL.encode(Array("{\"alg\":\"HS256\",\"kid\":\"\(keys.rsaKeyID)\"}".utf8))
            let input = header + "." + Base64URL.encode(Array(try JSONEncoder().encode(claims(env, sid: sid))))
            let mac = HMAC<SHA256>.authenticationCode(
                for: Array(input.utf8), using: SymmetricKey(data: keys.rsaPublicKeyDER()))
            return input + "." + Base64URL.encode(Array(mac))
        case .unknownKid:
            return try keys.sign(
                header: ["alg": "RS256", "kid": "not-a-key"], claims: claims(env, sid: sid), algorithm: "RS256")
        case .garbage: return "not.a.jwt"
        case .tamperedSignature:
            let valid = try keys.sign(claims: claims(env, sid: sid))
            return String(valid.dropLast(4)) + (valid.hasSuffix("AAAA") ? "BBBB" : "AAAA")
        }
    }

    @Test(arguments: Violation.allCases)
    func violatingTokenIsRefusedAndTheSessionSurvives(_ violation: Violation) async throws {
        try await TestEnvironment.run { env, browser in
            let sid = try await loggedIn(env, browser)
            let hostile = try token(violation, env: env, sid: sid)
            // Refused by the check it was built to fail, not by another one.
            do {
                _ = try await env.gateway.bff.logoutTokens.validate(hostile)
                Issue.record("\(violation) accepted")
            } catch let error as OIDCError {
                #expect(error == .invalidToken(violation.reason), "\(violation)")
            }
            let page = try await post(env, browser, token: hostile)
            #expect(page.status == 400, "\(violation)")
            #expect(page.body == "{\"error\":\"invalid_request\"}")
            #expect(try await env.user(browser).status == 200, "session survives \(violation)")
        }
    }

    @Test func malformedRequestsAre400() async throws {
        try await TestEnvironment.run { env, browser in
            let json = try await browser.sendJSON("POST", env.origin + "/bff/backchannel", "{\"logout_token\":\"x\"}")
            #expect(json.status == 400)
            let empty = try await browser.postForm(env.origin + "/bff/backchannel", [])
            #expect(empty.status == 400)
            let twice = try await browser.postForm(
                env.origin + "/bff/backchannel", [("logout_token", "a"), ("logout_token", "b")])
            #expect(twice.status == 400)
            let huge = try await browser.postForm(
                env.origin + "/bff/backchannel", [("logout_token", String(repeating: "a", count: 100_000))])
            #expect(huge.status == 400)
        }
    }

    @Test func cookieModeSessionsEndByRevocationRecord() async throws {
        try await TestEnvironment.run(configure: { $0.session.store = .cookie }) { env, browser in
            let sid = try await loggedIn(env, browser)
            #expect(
                try await post(env, browser, token: try env.idp.keys.sign(claims: claims(env, sid: sid))).status == 200)
            #expect(try await env.user(browser).status == 401, "the cookie still exists but is revoked")
        }
    }

    @Test func frontChannelLogoutIsOffByDefault() async throws {
        try await TestEnvironment.run { env, browser in
            let sid = try await loggedIn(env, browser)
            // An <img> on any page could otherwise end the session: sid is no secret.
            let page = try await browser.get(
                env.origin + "/bff/frontchannel?" + FormEncoding.encode([("iss", env.issuer), ("sid", sid)]))
            #expect(page.status == 404)
            #expect(try await env.user(browser).status == 200, "the session survives")
        }
    }

    @Test func frontChannelLogout() async throws {
        try await TestEnvironment.run(configure: { $0.logout.frontChannel = true }) { env, browser in
            let sid = try await loggedIn(env, browser)
            let foreign = try await browser.get(
                env.origin + "/bff/frontchannel?"
                    + FormEncoding.encode([("iss", "https://evil.example"), ("sid", sid)]))
            #expect(foreign.status == 200)
            #expect(try await env.user(browser).status == 200, "a foreign issuer ends nothing")
            let page = try await browser.get(
                env.origin + "/bff/frontchannel?" + FormEncoding.encode([("iss", env.issuer), ("sid", sid)]))
            #expect(page.status == 200)
            #expect(page.header("cache-control") == "no-store")
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func logoutAtTheDevIdPEndsTheSessionThroughBackChannel() async throws {
        try await TestEnvironment.run { env, browser in
            _ = try await loggedIn(env, browser)
            // Another application ends the IdP session: the dev IdP notifies every participating client.
            let ended = try await browser.get(env.issuer + "/end_session")
            #expect(ended.status == 200)
            #expect(await env.idp.statistics().backchannelLogoutsDelivered == 1)
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func backChannelLogoutRevokesTheEndedSessionsRefreshToken() async throws {
        try await TestEnvironment.run { env, browser in
            let sid = try await loggedIn(env, browser)
            #expect(
                try await post(env, browser, token: try env.idp.keys.sign(claims: claims(env, sid: sid))).status == 200)
            let revoked = try await eventually(until: { $0 == 1 }) { await env.idp.statistics().refreshTokensRevoked }
            #expect(revoked == 1, "the background queue revoked the refresh token at the IdP")
        }
    }
}
