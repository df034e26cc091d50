import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFTesting
import Foundation
import NIOCore
import Testing

@testable import BFFGateway
@testable import BFFOIDC

/// `private_key_jwt` (RFC 7523) against the dev IdP: every token-endpoint and revocation call
/// carries a fresh assertion; the dev IdP's checks refuse each kind of bad assertion for its reason.
@Suite("private_key_jwt client authentication")
struct ClientAuthenticationTests {
    static func configure(_ key: JWSPrivateKey) -> (inout BFFConfiguration) -> Void {
        { configuration in
            configuration.oidc.clientAuth = .privateKeyJWT
            configuration.oidc.clientKey = key
            configuration.oidc.clientSecret = nil
            // Every API call refreshes (the 300 s token is always within 400 s of expiry).
            configuration.tokens.refreshBeforeExpiry = .seconds(400)
        }
    }

    static func register(_ keys: [JWSPublicKey]) -> (inout DevIdentityProviderConfiguration) -> Void {
        { idp in
            idp.clients[0].clientSecret = ""
            idp.clients[0].publicKeys = keys
        }
    }

    @Test(arguments: JWSAlgorithm.allCases)
    func loginRefreshAndLogoutAuthenticateWithTheKey(_ algorithm: JWSAlgorithm) async throws {
        let key = try JWSPrivateKey.generate(algorithm)
        try await TestEnvironment.run(configure: Self.configure(key), configureIdP: Self.register([key.publicKey])) {
            env, browser in
            try await env.login(browser)
            #expect(try await env.user(browser).status == 200)
            let api = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf)
            #expect(api.status == 200)
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect(logout.status == 302)
            let statistics = await env.idp.statistics()
            #expect(statistics.refreshRequests == 1)
            #expect(statistics.refreshTokensRevoked == 1)
            // code + refresh + revocation, each with its own assertion (a replayed jti would be refused).
            #expect(statistics.clientAuthentications == ["private_key_jwt": 3])
            #expect(statistics.clientAssertionAudiences == ["endpoint": 3], "aud = the token or revocation endpoint")
            #expect(statistics.clientAuthenticationsRefused.isEmpty)
        }
    }

    /// `clientAssertionAudience: issuer` (IdPs following RFC 7523bis, Auth0): the dev IdP accepts
    /// its issuer as `aud` too.
    @Test func theIssuerCanBeTheAudience() async throws {
        let key = try JWSPrivateKey.generate(.es256)
        try await TestEnvironment.run(
            configure: {
                Self.configure(key)(&$0)
                $0.oidc.clientAssertionAudience = .issuer
            }, configureIdP: Self.register([key.publicKey])
        ) { env, browser in
            try await env.login(browser)
            #expect(await env.idp.statistics().clientAssertionAudiences == ["issuer": 1])
        }
    }

    @Test func aKeyTheIdPDoesNotKnowFailsTheLoginWithoutASession() async throws {
        let key = try JWSPrivateKey.generate(.es256)
        let registered = try JWSPrivateKey.generate(.es256)
        try await TestEnvironment.run(
            configure: Self.configure(key), configureIdP: Self.register([registered.publicKey])
        ) { env, browser in
            let callback = try await env.login(browser, mayFail: true)
            #expect(callback.status == 400, "SPEC §3: a refused code exchange is the 400 error page")
            #expect(!callback.body.contains("eyJ"))
            #expect(try await env.user(browser).status == 401)
            let statistics = await env.idp.statistics()
            #expect(statistics.clientAuthenticationsRefused == ["assertion signature": 1])
            #expect(statistics.clientAuthentications.isEmpty)
        }
    }

    /// Hostile assertions straight at the dev IdP's token endpoint, each refused for its own reason.
    @Test func theDevIdPRefusesEachBadAssertionForItsReason() async throws {
        let key = try JWSPrivateKey.generate(.es256)
        try await TestEnvironment.run(configure: Self.configure(key), configureIdP: Self.register([key.publicKey])) {
            env, _ in
            let client = HTTPClient.shared
            let now = SystemTimeSource().now
            let audience = env.issuer + "/token"
            func assertion(
                header: String? = nil, iss: String = "bff-demo", sub: String = "bff-demo", aud: String? = nil,
                exp: Int64? = nil, jti: String? = UUID().uuidString, signer: JWSPrivateKey? = nil
            ) throws -> String {
                var payload =
                    "{\"iss\":\"\(iss)\",\"sub\":\"\(sub)\",\"aud\":\"\(aud ?? audience)\",\"iat\":\(now),\"exp\":\(exp ?? now + 60)"
                if let jti { payload += ",\"jti\":\"\(jti)\"" }
                return try (signer ?? key).sign(
                    header: header ?? "{\"alg\":\"ES256\",\"kid\":\"\(key.keyID)\"}", payload: payload + "}")
            }
            func post(_ assertion: String, type: String = ClientAssertion.type) async throws -> Int {
                var request = HTTPClientRequest(url: env.issuer + "/token")
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
                let form = FormEncoding.encode([
                    ("grant_type", "client_credentials"), ("client_assertion_type", type),
                    ("client_assertion", assertion),
                ])
                request.body = .bytes(ByteBuffer(string: form))
                return Int(try await client.execute(request, timeout: .seconds(5)).status.code)
            }
            let good = try assertion()
            #expect(try await post(good) == 200)
            #expect(try await post(good) == 401, "the same jti twice")
            #expect(try await post(try assertion(aud: env.issuer + "/other")) == 401)
            #expect(try await post(try assertion(aud: env.issuer + "/revoke")) == 401, "another endpoint's")
            #expect(try await post(try assertion(exp: now - 60)) == 401)
            #expect(try await post(try assertion(exp: now + 3600)) == 401, "lifetime over 5 minutes")
            #expect(try await post(try assertion(sub: "someone")) == 401)
            #expect(try await post(try assertion(jti: nil)) == 401)
            #expect(try await post(try assertion(signer: try JWSPrivateKey.generate(.es256))) == 401)
            #expect(try await post(try assertion(header: "{\"alg\":\"none\"}")) == 401)
            #expect(try await post(try assertion(header: "{\"alg\":\"HS256\"}")) == 401)
            #expect(
                try await post(try assertion(header: "{\"alg\":\"ES256\",\"jwk\":\(key.publicKey.canonicalJSON)}"))
                    == 401, "an embedded key is not the registered one")
            #expect(try await post(try assertion(), type: "urn:other") == 401)
            let statistics = await env.idp.statistics()
            #expect(statistics.clientAuthentications == ["private_key_jwt": 1])
            #expect(
                statistics.clientAuthenticationsRefused == [
                    "assertion jti replayed": 1, "assertion audience": 2, "assertion lifetime": 2,
                    "assertion iss/sub": 1, "assertion jti": 1, "assertion signature": 1, "assertion algorithm": 3,
                    "assertion type": 1,
                ])
        }
    }

    /// `/readyz` asks the IdP once whether it accepts the client; a key it does not know is named.
    @Test func readinessReportsAKeyTheIdPRefuses() async throws {
        let key = try JWSPrivateKey.generate(.es256)
        let registered = try JWSPrivateKey.generate(.es256)
        try await TestEnvironment.run(
            configure: Self.configure(key), configureIdP: Self.register([registered.publicKey])
        ) { env, browser in
            let ready = try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz")
            #expect(ready.status == 503)
            #expect(
                ready.body.contains(
                    "refused the client bff-demo (private_key_jwt): check that oidc.clientKey's public JWK is registered"
                ),
                "\(ready.body)")
            #expect(await env.idp.statistics().clientAuthenticationsRefused == ["assertion signature": 1])
        }
        try await TestEnvironment.run(configure: Self.configure(key), configureIdP: Self.register([key.publicKey])) {
            env, browser in
            let first = try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz")
            let second = try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz")
            #expect(first.status == 200)
            #expect(second.status == 200)
            let statistics = await env.idp.statistics()
            #expect(statistics.clientAuthentications == ["private_key_jwt": 1], "probed once, then remembered")
            #expect(statistics.tokenRequests == ["refresh_token": 1])
        }
    }

    /// What the probe concludes from each kind of answer (a WAF page or a rate limit is no verdict).
    @Test func probeVerdicts() {
        typealias Verdict = ClientAuthenticationVerdict
        let cases: [(Int, String?, Bool, Verdict)] = [
            (400, "invalid_grant", false, .accepted),
            (400, "unauthorized_client", false, .accepted),
            (400, nil, true, .accepted),  // Glewlwyd: an unknown refresh token
            (401, "invalid_client", false, .refused),
            (400, "invalid_client", false, .refused),
            (401, nil, false, .refused),
            (403, nil, true, .refused),  // Glewlwyd: a refused client
            (403, nil, false, .undetermined("token endpoint answered 403")),  // an HTML page in front
            (401, "invalid_grant", false, .undetermined("token endpoint answered 401 invalid_grant")),
            (403, "access_denied", false, .undetermined("token endpoint answered 403 access_denied")),
            (302, nil, true, .undetermined("token endpoint answered 302")),
            (404, nil, false, .undetermined("token endpoint answered 404")),
            (429, nil, true, .unavailable("token endpoint answered 429")),
            (503, nil, false, .unavailable("token endpoint answered 503")),
        ]
        for (status, code, empty, expected) in cases {
            #expect(TokenEndpointClient.verdict(status: status, errorCode: code, emptyBody: empty) == expected)
        }
    }

    @Test func configurationNeedsAUsableKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-ck-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = try JWSPrivateKey.generate(.es256)
        let keyFile = directory.appendingPathComponent("client-key.pem").path
        try key.pemRepresentation.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let publicFile = directory.appendingPathComponent("public.json").path
        try key.publicJWKJSON.write(toFile: publicFile, atomically: true, encoding: .utf8)
        func load(_ oidc: String) -> Result<GatewayConfiguration, ProblemList> {
            GatewayConfigurationLoader.load(
                yaml: """
                    oidc:
                      issuer: http://127.0.0.1:5556
                      clientId: bff
                    \(oidc)
                    """, environment: [:])
        }
        switch load("  clientAuth: private_key_jwt\n  clientKey: \"file:\(keyFile)\"") {
        case .success(let configuration):
            #expect(configuration.bff.oidc.clientKey?.publicKey == key.publicKey)
            #expect(configuration.bff.oidc.clientSecret == nil)
        case .failure(let problems): Issue.record("refused: \(problems)")
        }
        let cases: [(String, String)] = [
            ("  clientAuth: private_key_jwt", "oidc.clientKey: is required for private_key_jwt"),
            (
                "  clientAuth: private_key_jwt\n  clientKey: \"file:\(publicFile)\"",
                "oidc.clientKey: cannot be used: the JWK has no valid private member 'd'"
            ),
            (
                "  clientAuth: private_key_jwt\n  clientKey: \"file:\(keyFile)\"\n  clientKeyAlgorithm: RS256",
                "oidc.clientKey: cannot be used: algorithm RS256 does not fit this key type"
            ),
            (
                "  clientAuth: private_key_jwt\n  clientKey: \"file:\(keyFile)\"\n  clientKeyAlgorithm: HS256",
                "oidc.clientKeyAlgorithm: 'HS256' is unknown"
            ),
            (
                "  clientAuth: private_key_jwt\n  clientKey: \"not a key\"",
                "oidc.clientKey: cannot be used: the key is not PEM"
            ),
            (
                "  clientSecret: s\n  clientKey: \"file:\(keyFile)\"",
                "oidc.clientKey: is set, but clientAuth is client_secret_basic"
            ),
        ]
        for (oidc, expected) in cases {
            guard case .failure(let problems) = load(oidc) else {
                Issue.record("accepted: \(oidc)")
                continue
            }
            #expect("\(problems)".contains(expected), "\(problems)")
            #expect(!"\(problems)".contains("BEGIN"), "never the key in a problem")
        }
    }
}
