import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFOIDC
import BFFTesting
import Foundation
import NIOCore
import Testing

@testable import BFFGateway

/// DPoP (RFC 9449) end to end against the dev IdP and its sample API: the session's key binds the
/// code (`dpop_jkt`), the tokens (`cnf.jkt`) and every upstream call (a fresh proof each).
@Suite("DPoP-bound sessions")
struct DPoPTests {
    static func withDPoP(
        nonce: Bool = false, pipeline fastPath: Bool = true, mode: DPoPMode = .required, refreshAlways: Bool = false,
        cookieMode: Bool = false,
        _ body: @Sendable (TestEnvironment, TestBrowser, String) async throws -> Void
    ) async throws {
        let echoPort = try await TestServers.freePort()
        let echo = "http://127.0.0.1:\(echoPort)"
        try await TestEnvironment.run(
            extraServices: [EchoUpstream.makeApplication(port: echoPort, logger: TestEnvironment.quietLogger)],
            extraPorts: [echoPort], apiFastPath: fastPath,
            configure: { configuration in
                configuration.oidc.dpop = mode
                if refreshAlways { configuration.tokens.refreshBeforeExpiry = .seconds(400) }
                if cookieMode { configuration.session.store = .cookie }
                configuration.server.environment = "development"
                configuration.diagnostics.showTokens = true
                configuration.apis.append(
                    APIRouteConfiguration(path: "/api/echo", upstream: echo + "/echo", token: .user))
                configuration.apis.append(
                    APIRouteConfiguration(path: "/api/challenge", upstream: echo + "/challenge", token: .user))
                configuration.apis.append(
                    APIRouteConfiguration(path: "/api/chnone", upstream: echo + "/challenge", token: .none))
            },
            configureIdP: { $0.dpopNonce = nonce }
        ) { env, browser in try await body(env, browser, echo) }
    }

    static func claims(ofJWT token: String) throws -> [String: JSONValue] {
        let jws = try #require(CompactJWS(token))
        return try JSONDecoder().decode([String: JSONValue].self, from: Data(jws.payloadJSON))
    }

    @Test(arguments: [true, false])
    func tokensAreBoundAndEveryUpstreamCallCarriesAFreshProof(fastPath: Bool) async throws {
        try await Self.withDPoP(pipeline: fastPath) { env, browser, echo in
            let start = try await browser.get(env.origin + "/bff/login")
            let location = try #require(start.location)
            let jkt = try #require(TestEnvironment.query(location)["dpop_jkt"])
            #expect(jkt.utf8.count == 43, "the authorization request names the session key's thumbprint")
            try await env.login(browser)
            #expect(await env.idp.statistics().dpopBoundTokens == 1)

            // The sample API refuses a bound token without a proof of its key: it answers 200 here.
            let sample = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf)
            #expect(sample.status == 200, "\(sample.body)")

            var proofs: [String] = []
            for round in 0..<2 {
                let page = try await browser.get(env.origin + "/api/echo/r\(round)?q=1", headers: env.csrf)
                #expect(page.status == 200)
                let seen = try EchoedRequest(json: page.body)
                let authorization = try #require(seen.values("authorization").first)
                #expect(authorization.hasPrefix("DPoP "), "the DPoP scheme, not Bearer")
                let token = String(authorization.dropFirst(5))
                let cnf = try Self.claims(ofJWT: token)["cnf"]?.objectValue?["jkt"]?.stringValue
                let proof = try #require(seen.values("dpop").first)
                proofs.append(proof)
                // The proof verifies for this request (htm, htu without the query, ath) with the bound key.
                let verdict = DevDPoPVerifier().verify(
                    proof, method: "GET", url: echo + "/echo/r\(round)", accessToken: token, now: SystemTimeSource().now
                )
                let bound = try #require(cnf)
                #expect(verdict == .success(bound), "\(verdict)")
            }
            #expect(Set(proofs).count == 2, "a fresh proof (jti) per call")

            // A stolen access token alone is useless at the API.
            let diagnostics = try await browser.get(env.origin + "/bff/diagnostics", headers: env.csrf)
            let token = try #require(TestEnvironment.extract(#""accessToken":""#, from: diagnostics.body))
            let api = "http://127.0.0.1:\(env.apiPort)/weatherforecast"
            let bare = try await browser.get(api, headers: [("Authorization", "Bearer " + token)])
            #expect(bare.status == 401)
            #expect(bare.header("www-authenticate") == "DPoP error=\"invalid_token\"")
            let noProof = try await browser.get(api, headers: [("Authorization", "DPoP " + token)])
            #expect(noProof.status == 401)
            // A proof captured on its way to another URL does not open this one.
            let replayed = try await browser.get(
                api, headers: [("Authorization", "DPoP " + token), ("DPoP", proofs[0])])
            #expect(replayed.status == 401)
            #expect(replayed.header("www-authenticate") == "DPoP error=\"invalid_dpop_proof\"")
        }
    }

    @Test func refreshesProveTheSessionKey() async throws {
        let echoPort = try await TestServers.freePort()
        try await TestEnvironment.run(
            extraServices: [EchoUpstream.makeApplication(port: echoPort, logger: TestEnvironment.quietLogger)],
            extraPorts: [echoPort],
            configure: { configuration in
                configuration.oidc.dpop = .required
                configuration.tokens.refreshBeforeExpiry = .seconds(400)  // every call refreshes
                configuration.apis.append(
                    APIRouteConfiguration(
                        path: "/api/echo", upstream: "http://127.0.0.1:\(echoPort)/echo", token: .user))
            }
        ) { env, browser in
            try await env.login(browser)
            var tokens: Set<String> = []
            for round in 0..<3 {
                let page = try await browser.get(env.origin + "/api/echo/\(round)", headers: env.csrf)
                #expect(page.status == 200)
                tokens.insert(try #require(try EchoedRequest(json: page.body).values("authorization").first))
            }
            let statistics = await env.idp.statistics()
            #expect(statistics.refreshRequests == 3)
            #expect(statistics.dpopBoundTokens == 4, "the login and each refresh: bound tokens, proofs accepted")
            #expect(statistics.dpopProofsRefused.isEmpty)
            #expect(tokens.count == 3 && tokens.allSatisfy { $0.hasPrefix("DPoP ") })
        }
    }

    /// A hostile or broken refresh answer: an `expires_in` that would overflow never crashes the
    /// gateway, and under `required` a `Bearer` answer is a failed refresh, never sent upstream.
    @Test(arguments: [DPoPMode.required, .off])
    func aBearerOrAbsurdRefreshAnswerIsContained(mode: DPoPMode) async throws {
        try await Self.withDPoP(mode: mode, refreshAlways: true) { env, browser, _ in
            try await env.login(browser)
            env.idpLink.answerRefreshes(
                with: OIDCHTTPResponse(
                    status: 200,
                    body: Array(
                        #"{"access_token":"AT-downgraded","token_type":"Bearer","expires_in":9223372036854775807}"#.utf8
                    )))
            let page = try await browser.get(env.origin + "/api/echo/x", headers: env.csrf)
            if mode == .required {
                #expect(page.status == 503, "\(page.status) \(page.body)")
                #expect(page.body.contains("urn:bff:problem:idp-unavailable"))
                #expect(try await env.user(browser).status == 200, "the session is kept")
            } else {
                #expect(page.status == 200)
                let seen = try EchoedRequest(json: page.body)
                #expect(seen.values("authorization") == ["Bearer AT-downgraded"])
                // expires_in was clamped to a year: the next call uses it without a refresh.
                env.idpLink.answerRefreshes(with: nil)
            }
        }
    }

    /// RFC 9449 §9: an upstream's `use_dpop_nonce` is answered once with a proof carrying its nonce
    /// (idempotent calls without a body), and later proofs to it carry the nonce from the start;
    /// RFC 9470's step-up challenge becomes the step-up problem. Both pipelines.
    @Test(arguments: [true, false])
    func upstreamChallengesAreHandledOnBothPipelines(fastPath: Bool) async throws {
        try await Self.withDPoP(pipeline: fastPath) { env, browser, echo in
            try await env.login(browser)
            let first = try await browser.get(env.origin + "/api/challenge/nonce", headers: env.csrf)
            #expect(first.status == 200, "retried with the nonce: \(first.status) \(first.body)")
            let second = try await browser.get(env.origin + "/api/challenge/nonce", headers: env.csrf)
            #expect(second.status == 200)
            let count = try await browser.get(echo + "/challenge/count")
            #expect(count.body == "1", "one challenge: the nonce was remembered for the next call")
            // Not idempotent: the upstream's 401 goes to the browser as it is (after the remembered
            // nonce made it unnecessary, a fresh upstream nonce is needed to see it: none here).
            let posted = try await browser.request(
                "POST", env.origin + "/api/challenge/nonce", headers: env.csrf + [("Content-Type", "text/plain")],
                body: Array("x".utf8))
            #expect(posted.status == 200, "the remembered nonce serves a POST too")

            let stepUp = try await browser.get(env.origin + "/api/challenge/step-up", headers: env.csrf)
            #expect(stepUp.status == 401)
            #expect(stepUp.body.contains(#""type":"urn:bff:problem:step-up-required""#), "\(stepUp.body)")
            #expect(stepUp.body.contains(#""acrValues":"mfa""#) && stepUp.body.contains(#""maxAge":60"#))
            #expect(!stepUp.body.contains("step up, please"), "the upstream's body is not passed on")
            #expect(try await browser.get(env.origin + "/api/echo/after", headers: env.csrf).status == 200)

            // A route without the user's token: the upstream cannot send the browser to a login.
            let anonymous = try await browser.get(env.origin + "/api/chnone/step-up", headers: env.csrf)
            #expect(anonymous.status == 401 && anonymous.body == "step up, please")
            // A challenge whose body drips for 10 s is answered at once (its connection dropped),
            // and the next calls to the same upstream are served.
            let started = ContinuousClock.now
            let slow = try await browser.get(env.origin + "/api/challenge/step-up-slow", headers: env.csrf)
            #expect(slow.status == 401 && slow.body.contains("step-up-required"))
            #expect(ContinuousClock.now - started < .seconds(5), "not held by the upstream's slow body")
            for round in 0..<3 {
                #expect(try await browser.get(env.origin + "/api/echo/after\(round)", headers: env.csrf).status == 200)
            }
        }
    }

    /// Cookie mode: the key is sealed into the session cookie with the tokens (the browser cannot
    /// open it); calls are bound and a refresh re-seals the cookie with the same key.
    @Test func cookieModeSessionsCarryTheirKeySealed() async throws {
        try await Self.withDPoP(refreshAlways: true, cookieMode: true) { env, browser, echo in
            try await env.login(browser)
            let cookie = try #require(browser.cookies(host: "localhost")["__Host-bff-session"])
            var keys: Set<String> = []
            for round in 0..<2 {
                let page = try await browser.get(env.origin + "/api/echo/c\(round)", headers: env.csrf)
                #expect(page.status == 200)
                let seen = try EchoedRequest(json: page.body)
                let token = String(try #require(seen.values("authorization").first).dropFirst(5))
                if round == 0 {
                    // Sealed: the cookie's bytes (after its chunk count) do not hold the access token
                    // the upstream got. (Not a search for "eyJ" in the text: random base64url holds
                    // it by chance in about one cookie of seventy.)
                    let sealed = try #require(
                        Base64URL.decode(cookie.utf8.drop { $0 != UInt8(ascii: ".") }.dropFirst()))
                    #expect(
                        sealed.count > 1000 && !sealed.contains(Array(token.utf8.prefix(64))), "sealed, not readable")
                }
                let verdict = DevDPoPVerifier().verify(
                    try #require(seen.values("dpop").first), method: "GET", url: echo + "/echo/c\(round)",
                    accessToken: token, now: SystemTimeSource().now)
                guard case .success(let jkt) = verdict else { throw TestServerError(message: "\(verdict)") }
                keys.insert(jkt)
            }
            #expect(keys.count == 1, "the same session key across a refresh (the cookie was re-sealed)")
            #expect(await env.idp.statistics().refreshRequests == 2)
        }
    }

    /// The demo's sample API refuses a proof it has seen (even with the right key, token and URL):
    /// a proof captured on its way is useless a second time.
    @Test func theSampleAPIRefusesAReplayedProof() async throws {
        try await Self.withDPoP { env, browser, _ in
            try await env.login(browser)
            // The session's own key, read the way the gateway reads it (to sign as the gateway does).
            let cookies = browser.cookies(host: "localhost").map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
            let loaded = try #require(try await env.gateway.bff.sessions.load(cookies: CookieHeader(fields: [cookies])))
            let key = try #require(loaded.session.dpopBinding)
            let token = try #require(loaded.session.tokens.accessToken)
            let url = "http://127.0.0.1:\(env.apiPort)/weatherforecast"
            let proof = key.proof(
                method: "GET", url: url, accessToken: token, nonce: nil, now: SystemTimeSource().now,
                random: SystemSecureRandom())
            let headers = [("Authorization", "DPoP " + token), ("DPoP", proof)]
            #expect(try await browser.get(url, headers: headers).status == 200, "the first use")
            let replay = try await browser.get(url, headers: headers)
            #expect(replay.status == 401, "the same proof again")
            #expect(replay.header("www-authenticate") == "DPoP error=\"invalid_dpop_proof\"")
        }
    }

    /// RFC 9449 §8: the IdP asks for a nonce once; the gateway retries with it and keeps it.
    @Test func theTokenEndpointsNonceIsRetriedOnceAndKept() async throws {
        try await Self.withDPoP(nonce: true) { env, browser, _ in
            try await env.login(browser)
            #expect(try await env.user(browser).status == 200)
            let statistics = await env.idp.statistics()
            #expect(statistics.dpopProofsRefused == ["nonce": 1], "one use_dpop_nonce, then the nonce was sent")
            #expect(statistics.dpopBoundTokens == 1)
            let second = TestBrowser()
            try await env.login(second)
            #expect(await env.idp.statistics().dpopProofsRefused == ["nonce": 1], "the nonce was kept")
            try await second.shutdown()
        }
    }

    /// Hostile proofs straight at the dev IdP's token endpoint, each refused for its reason.
    @Test func theDevIdPRefusesEachBadProof() async throws {
        try await Self.withDPoP { env, _, _ in
            let key = DPoPKey.generate()
            let now = SystemTimeSource().now
            let random = SystemSecureRandom()
            let url = env.issuer + "/token"
            func post(_ proof: String?) async throws -> Int {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
                request.headers.add(
                    name: "authorization",
                    value: "Basic " + Data("bff-demo:\(DemoSetup.clientSecret)".utf8).base64EncodedString())
                if let proof { request.headers.add(name: "DPoP", value: proof) }
                request.body = .bytes(ByteBuffer(string: "grant_type=client_credentials&scope=api"))
                return Int(try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status.code)
            }
            let good = key.proof(method: "POST", url: url, accessToken: nil, nonce: nil, now: now, random: random)
            #expect(try await post(good) == 200)
            #expect(try await post(good) == 400, "the same jti twice")
            #expect(
                try await post(
                    key.proof(method: "GET", url: url, accessToken: nil, nonce: nil, now: now, random: random)) == 400)
            #expect(
                try await post(
                    key.proof(method: "POST", url: url + "x", accessToken: nil, nonce: nil, now: now, random: random))
                    == 400)
            #expect(
                try await post(
                    key.proof(method: "POST", url: url, accessToken: nil, nonce: nil, now: now - 600, random: random))
                    == 400)
            let forged = try key.key.sign(
                header:
                    "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":\(DPoPKey.generate().key.publicKey.canonicalJSON)}",
                payload: "{\"jti\":\"x1\",\"htm\":\"POST\",\"htu\":\"\(url)\",\"iat\":\(now)}")
            #expect(try await post(forged) == 400, "signed by another key than the one in the header")
            let untyped = try key.key.sign(
                header: "{\"alg\":\"ES256\",\"jwk\":\(key.key.publicKey.canonicalJSON)}",
                payload: "{\"jti\":\"x2\",\"htm\":\"POST\",\"htu\":\"\(url)\",\"iat\":\(now)}")
            #expect(try await post(untyped) == 400)
            #expect(try await post("eyJhbGciOiJub25lIn0.eyJ9.") == 400)
            #expect(
                await env.idp.statistics().dpopProofsRefused == [
                    "jti replayed": 1, "htm": 1, "htu": 1, "iat": 1, "signature": 1, "typ": 1, "malformed": 1,
                ])
        }
    }
}
