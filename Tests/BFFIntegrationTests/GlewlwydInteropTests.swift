import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFForwarder
import BFFOIDC
import BFFTesting
import Foundation
import Logging
import ServiceLifecycle
import Testing

@testable import BFFGateway

/// The BFF against a real, third-party IdP: Glewlwyd (Debian), started by
/// `scripts/interop/glewlwyd/start.sh`. `.ci/run` starts it and sets `BFF_TEST_GLEWLWYD_ISSUER`; there
/// `BFF_REQUIRE_INTEROP=1` turns a missing IdP into a failure instead of a skip.
@Suite("Interop: Glewlwyd", .serialized)
struct GlewlwydInteropTests {
    static let issuer = ProcessInfo.processInfo.environment["BFF_TEST_GLEWLWYD_ISSUER"]
    static let required = ProcessInfo.processInfo.environment["BFF_REQUIRE_INTEROP"] == "1"
    static let port = Int(ProcessInfo.processInfo.environment["BFF_TEST_GLEWLWYD_GATEWAY_PORT"] ?? "5180") ?? 5180

    @Test func glewlwydIsAvailableWhenRequired() {
        if Self.required {
            #expect(Self.issuer != nil, "BFF_REQUIRE_INTEROP=1 but BFF_TEST_GLEWLWYD_ISSUER is not set")
        }
    }

    @Test(.enabled(if: issuer != nil, "set BFF_TEST_GLEWLWYD_ISSUER (scripts/interop/glewlwyd/start.sh)"))
    func loginUserLocalAPIAndLogout() async throws {
        try await Self.withGateway { browser, origin, issuer, idpBase, clock in
            try await Self.scenario(browser: browser, origin: origin, issuer: issuer, idpBase: idpBase, clock: clock)
        }
    }

    @Test(.enabled(if: issuer != nil, "set BFF_TEST_GLEWLWYD_ISSUER (scripts/interop/glewlwyd/start.sh)"))
    func logoutAtGlewlwydEndsTheBFFSessionThroughBackChannel() async throws {
        try await Self.withGateway { browser, origin, issuer, idpBase, _ in
            try await Self.login(browser: browser, origin: origin, issuer: issuer, idpBase: idpBase)
            let csrf = [("X-CSRF", "1")]
            let user = try await browser.get(origin + "/bff/user", headers: csrf)
            #expect(user.status == 200)
            let logoutPath = try #require(TestEnvironment.extract(#""bff:logout_url","value":""#, from: user.body))
            let sid = try #require(TestEnvironment.query(origin + logoutPath)["sid"])
            // The user logs out at Glewlwyd (what its logout page does); Glewlwyd then POSTs a logout
            // token (no exp, typ JWT) to the gateway's /bff/backchannel from a background thread.
            let deleted = try await browser.request("DELETE", idpBase + "/api/oidc/session/" + FormEncoding.escape(sid))
            #expect(deleted.status == 200)
            let status = try await eventually(attempts: 60, every: .milliseconds(50), until: { $0 == 401 }) {
                try await browser.get(origin + "/bff/user", headers: csrf).status
            }
            #expect(status == 401, "the BFF session ended through back-channel logout")
        }
    }

    /// private_key_jwt with a key made by Glewlwyd's own tool (rnbyc, a private JWK): the PAR
    /// request, the code exchange, refreshes and the revocation at logout each carry an assertion
    /// whose `aud` is the endpoint called, as Glewlwyd requires.
    @Test(.enabled(if: issuer != nil && clientKeyFile != nil, "scripts/test.sh sets BFF_TEST_GLEWLWYD_CLIENT_KEY"))
    func privateKeyJWTLoginRefreshAndRevocation() async throws {
        let text = try String(contentsOfFile: try #require(Self.clientKeyFile), encoding: .utf8)
        let key = try JWSPrivateKey(text: text)
        try await Self.withGateway(clientKey: key) { browser, origin, issuer, idpBase, clock in
            let csrf = [("X-CSRF", "1")]
            try await Self.login(
                browser: browser, origin: origin, issuer: issuer, idpBase: idpBase, clientID: "bff-jwt")
            var tokens: Set<String> = []
            for round in 0..<3 {
                let page = try await browser.get(origin + "/api/echo/jwt/\(round)", headers: csrf)
                #expect(page.status == 200, "round \(round): \(page.status) \(page.body)")
                tokens.insert(try #require(try EchoedRequest(json: page.body).values("authorization").first))
                clock.advance(by: 300)
            }
            #expect(tokens.count == 3, "two refreshes authenticated with the key")
            let diagnostics = try await browser.get(origin + "/bff/diagnostics", headers: csrf)
            let refreshToken = try #require(TestEnvironment.extract(#""refreshToken":""#, from: diagnostics.body))
            let user = try await browser.get(origin + "/bff/user", headers: csrf)
            let logoutPath = try #require(TestEnvironment.extract(#""bff:logout_url","value":""#, from: user.body))
            #expect(try await browser.get(origin + logoutPath).status == 302)
            // Revoked at logout: our own assertion (fresh jti) for a refresh now gets invalid_grant.
            let assertion = try ClientAssertion.make(
                key: key, clientID: "bff-jwt", audience: issuer + "/token", now: SystemTimeSource().now,
                random: SystemSecureRandom())
            let refresh = try await browser.request(
                "POST", issuer + "/token", headers: [("content-type", "application/x-www-form-urlencoded")],
                body: Array(
                    FormEncoding.encode([
                        ("grant_type", "refresh_token"), ("refresh_token", refreshToken),
                        ("client_assertion_type", ClientAssertion.type), ("client_assertion", assertion),
                    ]).utf8), sendCookies: false)
            // Glewlwyd answers a refused client 403 and a dead refresh token 400 (with an empty body).
            #expect(refresh.status == 400, "the refresh token was revoked at logout (got \(refresh.status))")
        }
    }

    /// The readiness probe's verdict on Glewlwyd: its registered key passes, another is refused.
    @Test(.enabled(if: issuer != nil && clientKeyFile != nil, "scripts/test.sh sets BFF_TEST_GLEWLWYD_CLIENT_KEY"))
    func clientAuthenticationProbe() async throws {
        let registered = try JWSPrivateKey(
            text: try String(contentsOfFile: try #require(Self.clientKeyFile), encoding: .utf8))
        let client = AsyncHTTPClientTransport.makeClient()
        defer { _ = client }
        func probe(_ key: JWSPrivateKey) async throws -> ClientAuthenticationVerdict {
            var oidc = OIDCConfiguration(issuer: try #require(Self.issuer), clientID: "bff-jwt")
            oidc.clientAuth = .privateKeyJWT
            oidc.clientKey = key
            let http = AsyncHTTPClientTransport(client: client)
            let provider = OIDCProvider(configuration: oidc, http: http)
            return await TokenEndpointClient(provider: provider, http: http, configuration: oidc)
                .verifyClientAuthentication()
        }
        do {
            #expect(try await probe(registered) == .accepted)
            #expect(try await probe(try JWSPrivateKey.generate()) == .refused)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    /// DPoP against Glewlwyd: the code is bound (`dpop_jkt`), the tokens carry `cnf.jkt` of the
    /// session's key, refreshes prove it, userinfo accepts it, and the upstream receives the DPoP
    /// scheme with a proof that verifies against `cnf.jkt`.
    @Test(.enabled(if: issuer != nil, "set BFF_TEST_GLEWLWYD_ISSUER (scripts/interop/glewlwyd/start.sh)"))
    func dpopBindsGlewlwydTokensToTheSessionKey() async throws {
        try await Self.withGateway(configure: {
            $0.oidc.dpop = .auto  // Glewlwyd advertises dpop_signing_alg_values_supported
            $0.oidc.fetchUserInfo = true  // Glewlwyd's userinfo refuses a bound token without a proof
            $0.tokens.refreshBeforeExpiry = .seconds(400)  // every call refreshes (300 s tokens)
        }) { browser, origin, issuer, idpBase, _ in
            let csrf = [("X-CSRF", "1")]
            try await Self.login(browser: browser, origin: origin, issuer: issuer, idpBase: idpBase)
            var seen: Set<String> = []
            for round in 0..<3 {
                let page = try await browser.get(origin + "/api/echo/dpop/\(round)", headers: csrf)
                #expect(page.status == 200, "round \(round): \(page.status) \(page.body)")
                let echoed = try EchoedRequest(json: page.body)
                let authorization = try #require(echoed.values("authorization").first)
                #expect(authorization.hasPrefix("DPoP "), "\(authorization.prefix(12))")
                let token = String(authorization.dropFirst(5))
                seen.insert(token)
                let jws = try #require(CompactJWS(token))
                let claims = try JSONDecoder().decode([String: JSONValue].self, from: Data(jws.payloadJSON))
                let jkt = try #require(claims["cnf"]?.objectValue?["jkt"]?.stringValue, "Glewlwyd bound the token")
                let proof = try #require(echoed.values("dpop").first)
                // The echo upstream's port is the gateway's business: take htu's origin, check the rest.
                let proofClaims = try JSONDecoder().decode(
                    [String: JSONValue].self, from: Data(try #require(CompactJWS(proof)).payloadJSON))
                let htu = try #require(proofClaims["htu"]?.stringValue)
                #expect(htu.hasPrefix("http://127.0.0.1:") && htu.hasSuffix("/echo/dpop/\(round)"), "\(htu)")
                let verdict = DevDPoPVerifier().verify(
                    proof, method: "GET", url: htu + "?unused", accessToken: token, now: SystemTimeSource().now)
                #expect(verdict == .success(jkt), "\(verdict)")
            }
            #expect(seen.count == 3, "two refreshes with proofs, each a new bound token")
            let user = try await browser.get(origin + "/bff/user", headers: csrf)
            #expect(user.body.contains(#""type":"email""#), "userinfo merged with a DPoP call: \(user.body)")
        }
    }

    static let clientKeyFile = ProcessInfo.processInfo.environment["BFF_TEST_GLEWLWYD_CLIENT_KEY"]

    typealias Body = @Sendable (TestBrowser, String, String, String, ManualTimeSource) async throws -> Void

    /// Runs the gateway (port 5180, the origin registered at Glewlwyd) with an echo upstream.
    static func withGateway(
        clientKey: JWSPrivateKey? = nil, configure: (inout BFFConfiguration) -> Void = { _ in }, _ run: Body
    ) async throws {
        let issuer = try #require(Self.issuer)
        let idpBase = try #require(WebURL(issuer)).origin
        let origin = "http://localhost:\(Self.port)"
        var bff = BFFConfiguration()
        bff.server.port = Self.port
        bff.server.publicOrigin = origin
        bff.server.environment = "development"
        bff.diagnostics.showTokens = true  // lets this test check that the refresh token was revoked
        bff.oidc.issuer = issuer
        bff.oidc.clientID = "bff"
        bff.oidc.clientSecret = "bff-secret"
        if let clientKey {
            // start.sh registers "bff-jwt" with the public half of a key Glewlwyd's rnbyc made.
            bff.oidc.clientID = "bff-jwt"
            bff.oidc.clientSecret = nil
            bff.oidc.clientAuth = .privateKeyJWT
            bff.oidc.clientKey = clientKey
        }
        bff.admin.listen = nil
        bff.session.store = .memory
        let echoPort = try await TestServers.freePort()
        bff.apis = [
            APIRouteConfiguration(path: "/api/echo", upstream: "http://127.0.0.1:\(echoPort)/echo", token: .user)
        ]
        configure(&bff)
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        let keyRing = try KeyRing(keys: [KeyRing.Key(id: "interop", secret: SystemSecureRandom().bytes(32))])
        let client = AsyncHTTPClientTransport.makeClient()
        let forwarder = NIOUpstream()
        let gateway = try Gateway.build(
            configuration: GatewayConfiguration(bff: bff), keyRing: keyRing,
            http: AsyncHTTPClientTransport(client: client), upstream: forwarder, time: clock,
            logger: TestEnvironment.quietLogger, configureRouter: DemoAPI.add)
        let browser = TestBrowser()
        defer { _ = browser }
        do {
            let echo = EchoUpstream.makeApplication(port: echoPort, logger: TestEnvironment.quietLogger)
            try await TestServers.withRunning([gateway.application, echo, forwarder], ports: [Self.port, echoPort]) {
                try await run(browser, origin, issuer, idpBase, clock)
            }
        } catch {
            try? await browser.shutdown()
            try? await client.shutdown()
            throw error
        }
        try await browser.shutdown()
        try await client.shutdown()
    }

    /// Logs in through the BFF and Glewlwyd's real login API (as its login page does).
    static func login(
        browser: TestBrowser, origin: String, issuer: String, idpBase: String, clientID: String = "bff"
    ) async throws {
        // BFF → Glewlwyd authorize (PAR, as Glewlwyd advertises it) → its login SPA's API.
        let start = try await browser.get(origin + "/bff/login?returnUrl=%2Fhome")
        #expect(start.status == 302)
        let authorize = try #require(start.location)
        #expect(authorize.hasPrefix(issuer + "/auth?"))
        #expect(TestEnvironment.query(authorize)["request_uri"] != nil, "pushed authorization request used")
        let toLogin = try await browser.get(authorize)
        #expect(toLogin.status == 302)
        let loginPage = resolve(try #require(toLogin.header("location")), base: idpBase)
        let loginQuery = TestEnvironment.query(loginPage)
        let callbackURL = try #require(loginQuery["callback_url"])
        let auth = try await browser.sendJSON(
            "POST", idpBase + "/api/auth/", #"{"username":"alice","password":"alice-password"}"#)
        #expect(auth.status == 200, "Glewlwyd password login: \(auth.body)")
        let scope = loginQuery["scope"] ?? "openid profile email offline_access"
        let grant = try await browser.sendJSON(
            "PUT", idpBase + "/api/auth/grant/" + clientID, "{\"scope\":\(JSONText.quote(scope))}")
        #expect(grant.status == 200, "Glewlwyd consent: \(grant.body)")
        var page = try await browser.get(callbackURL + (callbackURL.contains("?") ? "&" : "?") + "g_continue")
        for _ in 0..<5 where page.status == 302 {
            let next = resolve(try #require(page.header("location")), base: idpBase)
            if next.hasPrefix(origin) { break }
            page = try await browser.get(next)
        }
        let callback = resolve(try #require(page.header("location")), base: idpBase)
        #expect(callback.hasPrefix(origin + "/signin-oidc?"))
        let finished = try await browser.get(callback)
        #expect(finished.status == 302, "callback: \(finished.body)")
        #expect(finished.header("location") == "/home")

    }

    static func resolve(_ location: String, base: String) -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        if location.hasPrefix("/") { return base + location }
        return base + "/" + location
    }

    static func scenario(
        browser: TestBrowser, origin: String, issuer: String, idpBase: String, clock: ManualTimeSource
    ) async throws {
        let csrf = [("X-CSRF", "1")]
        try await login(browser: browser, origin: origin, issuer: issuer, idpBase: idpBase)

        // 2. /bff/user with Glewlwyd's claims, and a local API call.
        let user = try await browser.get(origin + "/bff/user", headers: csrf)
        #expect(user.status == 200)
        #expect(user.body.contains(#"{"type":"name","value":"Alice Smith"}"#))
        #expect(user.body.contains(#"{"type":"iss","value":"\#(issuer)"}"#))
        #expect(!user.body.contains("eyJ"))
        let api = try await browser.get(origin + "/api/local/weatherforecast", headers: csrf)
        #expect(api.status == 200)
        // 2b. The bearer token reaches a remote API; Glewlwyd's rotating one-time refresh tokens are
        // redeemed repeatedly (a replay would revoke the whole family and fail the next round).
        var tokens: [String] = []
        for round in 0..<4 {
            let page = try await browser.get(origin + "/api/echo/round/\(round)", headers: csrf)
            #expect(page.status == 200, "round \(round): \(page.status) \(page.body)")
            let seen = try EchoedRequest(json: page.body)
            tokens.append(try #require(seen.values("authorization").first))
            clock.advance(by: 300)  // Glewlwyd issues 300 s access tokens: the next call must refresh
        }
        #expect(Set(tokens).count == 4, "each round used a freshly refreshed access token")
        #expect(tokens.allSatisfy { $0.hasPrefix("Bearer ey") })

        let diagnostics = try await browser.get(origin + "/bff/diagnostics", headers: csrf)
        let refreshToken = try #require(TestEnvironment.extract(#""refreshToken":""#, from: diagnostics.body))

        // 3. Logout at the BFF: refresh token revoked at Glewlwyd, session gone, redirect to end_session.
        let logoutPath = try #require(TestEnvironment.extract(#""bff:logout_url","value":""#, from: user.body))
        let logout = try await browser.get(origin + logoutPath)
        #expect(logout.status == 302)
        let endSession = try #require(logout.location)
        #expect(endSession.hasPrefix(issuer + "/end_session?"))
        #expect(try await browser.get(origin + "/bff/user", headers: csrf).status == 401)
        let basic = "Basic " + Data("bff:bff-secret".utf8).base64EncodedString()
        let refresh = try await browser.request(
            "POST", issuer + "/token",
            headers: [("content-type", "application/x-www-form-urlencoded"), ("authorization", basic)],
            body: Array(FormEncoding.encode([("grant_type", "refresh_token"), ("refresh_token", refreshToken)]).utf8),
            sendCookies: false)
        #expect(refresh.status == 400, "the refresh token was revoked at logout (got \(refresh.status))")

        // 4. Glewlwyd's end_session: its SPA ends the session, then returns to our post-logout callback.
        let toEnd = try await browser.get(endSession)
        #expect(toEnd.status == 302)
        let endPage = TestEnvironment.query(resolve(try #require(toEnd.header("location")), base: idpBase))
        #expect(endPage["prompt"] == "end_session")
        let sid = try #require(endPage["sid"])
        let plugin = endPage["plugin"] ?? "oidc"
        let deleted = try await browser.request("DELETE", idpBase + "/api/\(plugin)/session/\(sid)")
        #expect(deleted.status == 200)
        _ = try await browser.request("DELETE", idpBase + "/api/auth/")
        let back = try #require(endPage["callback_url"])
        #expect(back.hasPrefix(origin + "/signout-callback-oidc"))
        let final = try await browser.get(back)
        #expect(final.status == 302)
        #expect(final.header("location") == "/")
    }
}
