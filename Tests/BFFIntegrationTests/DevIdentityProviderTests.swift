import BFFCore
import BFFTesting
import Foundation
import Testing

@Suite("Development IdP protocol behaviour")
struct DevIdentityProviderTests {
    /// Runs the authorization step by hand and returns (code, verifier, redirect URI).
    func authorize(_ env: TestEnvironment, _ browser: TestBrowser, verifier: String) async throws -> String {
        let challenge = LoginTransaction(
            state: "s", nonce: "n", codeVerifier: verifier, issuer: env.issuer, returnURL: "/", prompt: nil,
            createdAt: 0
        ).codeChallenge
        let query = FormEncoding.encode([
            ("response_type", "code"), ("client_id", "bff-demo"), ("redirect_uri", env.origin + "/signin-oidc"),
            ("scope", "openid profile offline_access"), ("state", "xyz"), ("nonce", "n"),
            ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ])
        let form = try await browser.get(env.issuer + "/authorize?" + query)
        if form.status == 302 {  // an IdP session exists already: single sign-on
            let location = try #require(form.location)
            return try #require(TestEnvironment.query(location)["code"])
        }
        let requestID = try #require(TestEnvironment.extract(#"name="request_id" value=""#, from: form.body))
        let done = try await browser.postForm(
            env.issuer + "/authorize", [("request_id", requestID), ("username", "bob"), ("password", "bob")])
        let location = try #require(done.location)
        return try #require(TestEnvironment.query(location)["code"])
    }

    func token(_ env: TestEnvironment, _ browser: TestBrowser, _ form: [(String, String)]) async throws
        -> TestBrowser.Page
    {
        try await browser.postForm(
            env.issuer + "/token", form + [("client_id", "bff-demo"), ("client_secret", DemoSetupSecret.value)])
    }

    @Test func pkceIsEnforcedAndCodesAreSingleUse() async throws {
        try await TestEnvironment.run { env, browser in
            let verifier = String(repeating: "v", count: 50)
            let code = try await authorize(env, browser, verifier: verifier)
            let redirect = env.origin + "/signin-oidc"
            let wrong = try await token(
                env, browser,
                [
                    ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect),
                    ("code_verifier", String(repeating: "w", count: 50)),
                ])
            #expect(wrong.status == 400)
            #expect(wrong.body.contains("invalid_grant"))
            // The code was consumed by the failed attempt: single use.
            let again = try await token(
                env, browser,
                [
                    ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                ])
            #expect(again.status == 400)
            let code2 = try await authorize(env, browser, verifier: verifier)
            let ok = try await token(
                env, browser,
                [
                    ("grant_type", "authorization_code"), ("code", code2), ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                ])
            #expect(ok.status == 200)
            #expect(ok.body.contains("refresh_token"))
        }
    }

    @Test func refreshRotatesAndReuseKillsTheFamily() async throws {
        try await TestEnvironment.run { env, browser in
            let verifier = String(repeating: "q", count: 50)
            let code = try await authorize(env, browser, verifier: verifier)
            let first = try await token(
                env, browser,
                [
                    ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", env.origin + "/signin-oidc"),
                    ("code_verifier", verifier),
                ])
            let rt1 = try #require(TestEnvironment.extract(#""refresh_token":""#, from: first.body))
            let second = try await token(env, browser, [("grant_type", "refresh_token"), ("refresh_token", rt1)])
            #expect(second.status == 200)
            let rt2 = try #require(TestEnvironment.extract(#""refresh_token":""#, from: second.body))
            #expect(rt1 != rt2)
            let replay = try await token(env, browser, [("grant_type", "refresh_token"), ("refresh_token", rt1)])
            #expect(replay.status == 400)
            let afterReplay = try await token(env, browser, [("grant_type", "refresh_token"), ("refresh_token", rt2)])
            #expect(afterReplay.status == 400, "reuse revoked the whole family")
            #expect(await env.idp.statistics().refreshReuseDetected == 1)
        }
    }

    @Test func clientCredentialsUserinfoAndClientAuth() async throws {
        try await TestEnvironment.run { env, browser in
            let cc = try await token(env, browser, [("grant_type", "client_credentials"), ("scope", "api")])
            #expect(cc.status == 200)
            let badClient = try await browser.postForm(
                env.issuer + "/token",
                [("grant_type", "client_credentials"), ("client_id", "bff-demo"), ("client_secret", "wrong")])
            #expect(badClient.status == 401)
            let verifier = String(repeating: "u", count: 50)
            let code = try await authorize(env, browser, verifier: verifier)
            let tokens = try await token(
                env, browser,
                [
                    ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", env.origin + "/signin-oidc"),
                    ("code_verifier", verifier),
                ])
            let accessToken = try #require(TestEnvironment.extract(#""access_token":""#, from: tokens.body))
            let info = try await browser.get(
                env.issuer + "/userinfo", headers: [("authorization", "Bearer " + accessToken)])
            #expect(info.status == 200)
            #expect(info.body.contains("Bob Jones"))
            #expect(
                try await browser.get(env.issuer + "/userinfo", headers: [("authorization", "Bearer nope")]).status
                    == 401)
        }
    }

    @Test func authorizeRefusesUnregisteredRedirectsAndMissingPKCE() async throws {
        try await TestEnvironment.run { env, browser in
            let evil = try await browser.get(
                env.issuer + "/authorize?"
                    + FormEncoding.encode([
                        ("response_type", "code"), ("client_id", "bff-demo"),
                        ("redirect_uri", "https://evil.example/cb"), ("scope", "openid"),
                    ]))
            #expect(evil.status == 400, "never redirects to an unregistered URI")
            let noPKCE = try await browser.get(
                env.issuer + "/authorize?"
                    + FormEncoding.encode([
                        ("response_type", "code"), ("client_id", "bff-demo"),
                        ("redirect_uri", env.origin + "/signin-oidc"), ("scope", "openid"), ("state", "s"),
                    ]))
            #expect(noPKCE.status == 302)
            #expect(noPKCE.location?.contains("error=invalid_request") == true)
        }
    }

    @Test func endSessionRefusesUnregisteredPostLogoutRedirect() async throws {
        try await TestEnvironment.run { env, browser in
            let page = try await browser.get(
                env.issuer + "/end_session?"
                    + FormEncoding.encode([
                        ("client_id", "bff-demo"), ("post_logout_redirect_uri", "https://evil.example/"),
                    ]))
            #expect(page.status == 400)
        }
    }
}

enum DemoSetupSecret {
    static let value = "demo-secret-not-for-production"
}
