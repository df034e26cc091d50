import BFFCore
import BFFTesting
import Foundation
import Testing

@Suite("End-to-end against the development IdP")
struct LoginFlowTests {
    @Test func theReferenceScenario() async throws {
        // Front-channel logout is opt-in; the reference scenario walks through it.
        try await TestEnvironment.run(configure: { $0.logout.frontChannel = true }) { env, browser in
            // Anonymous API call → 401.
            let anonymous = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf)
            #expect(anonymous.status == 401)
            #expect(anonymous.body.contains("urn:bff:problem:unauthenticated"))
            #expect(anonymous.header("content-type") == "application/problem+json")

            // Login → IdP form → callback → session cookie → 302 to returnUrl.
            let callback = try await env.login(browser, returnURL: "/app?tab=1")
            #expect(callback.status == 302)
            #expect(callback.header("location") == "/app?tab=1")
            let sessionCookie = try #require(
                browser.setCookieLines.last { $0.hasPrefix("__Host-bff-session=") && !$0.contains("Max-Age=0") })
            #expect(sessionCookie.contains("; Path=/"))
            #expect(sessionCookie.contains("; Secure"))
            #expect(sessionCookie.contains("; HttpOnly"))
            #expect(sessionCookie.contains("; SameSite=Strict"))
            #expect(!sessionCookie.lowercased().contains("domain="))
            #expect(
                browser.cookies(host: "localhost").keys.filter { $0.hasPrefix("__Host-bff-login.") }.isEmpty,
                "login transaction consumed")

            // API without X-CSRF → 401 antiforgery; with it → 200.
            let noHeader = try await browser.get(env.origin + "/api/weatherforecast")
            #expect(noHeader.status == 401)
            #expect(noHeader.body.contains("urn:bff:problem:antiforgery"))
            let api = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf)
            #expect(api.status == 200)
            #expect(api.body.contains("\"user\":\"alice-7f3b\""))

            // /bff/user → claims with bff:logout_url, never a token.
            let user = try await env.user(browser)
            #expect(user.status == 200)
            #expect(user.header("cache-control") == "no-store")
            #expect(user.header("content-type") == "application/json")
            #expect(user.body.contains(#"{"type":"name","value":"Alice Smith"}"#))
            #expect(user.body.contains(#"{"type":"sub","value":"alice-7f3b"}"#))
            #expect(user.body.contains(#""type":"bff:logout_url","value":"/bff/logout?sid="#))
            #expect(user.body.contains(#""type":"bff:session_expires_in","value":"#))
            #expect(!user.body.contains("nonce"))
            #expect(!user.body.contains("eyJ"), "no JWT in the user endpoint")
            #expect(!user.body.contains("token"))

            // Logout → session ended here, refresh token revoked, redirect to end_session.
            let logout = try await browser.get(try await env.logoutURL(browser) + "&returnUrl=%2Fbye")
            #expect(logout.status == 302)
            let endSession = try #require(logout.location)
            #expect(endSession.hasPrefix(env.issuer + "/end_session?"))
            let query = TestEnvironment.query(endSession)
            #expect(query["id_token_hint"]?.hasPrefix("eyJ") == true)
            #expect(query["post_logout_redirect_uri"] == env.origin + "/signout-callback-oidc")
            #expect(query["client_id"] == "bff-demo")
            #expect(query["state"] != nil)
            #expect(await env.idp.statistics().refreshTokensRevoked == 1)
            #expect(try await env.user(browser).status == 401)

            // The IdP ends its session, loads the front-channel logout iframe, and sends the browser
            // back; the BFF goes to returnUrl.
            let back = try await browser.get(endSession)
            #expect(back.status == 200)
            let frame = try #require(TestEnvironment.extract("<iframe src=\"", from: back.body))
            #expect(frame.hasPrefix(env.origin + "/bff/frontchannel?iss="))
            #expect(try await browser.get(frame.replacingOccurrences(of: "&amp;", with: "&")).status == 200)
            let refresh = try #require(TestEnvironment.extract("content=\"1;url=", from: back.body))
                .replacingOccurrences(of: "&amp;", with: "&")
            #expect(refresh.hasPrefix(env.origin + "/signout-callback-oidc?state="))
            let final = try await browser.get(refresh)
            #expect(final.status == 302)
            #expect(final.header("location") == "/bye")
            #expect(await env.idp.statistics().endSessionRequests >= 1)

            // The IdP session is gone too: a new login shows the form again.
            let again = try await browser.get(env.origin + "/bff/login")
            let form = try await browser.get(try #require(again.location))
            #expect(form.status == 200)
            #expect(form.body.contains("name=\"request_id\""))
        }
    }

    @Test func cookieModeWorksEndToEnd() async throws {
        try await TestEnvironment.run(configure: { $0.session.store = .cookie }) { env, browser in
            try await env.login(browser)
            #expect(try await env.user(browser).status == 200)
            #expect(try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf).status == 200)
            let saved = browser.cookies(host: "localhost")
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect(logout.status == 302)
            #expect(try await env.user(browser).status == 401)
            // Replaying the old cookie after logout stays anonymous (revocation record).
            for (name, value) in saved { browser.setCookie(host: "localhost", name: name, value: value) }
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func idpWithoutSidGetsARandomLogoutID() async throws {
        try await TestEnvironment.run(issueSessionID: false) { env, browser in
            try await env.login(browser)
            let url = try await env.logoutURL(browser)
            let sid = try #require(TestEnvironment.query(url)["sid"])
            #expect(sid.count >= 20)
            #expect(try await browser.get(url).status == 302)
        }
    }

    @Test func anonymousUserAsNull() async throws {
        try await TestEnvironment.run(configure: { $0.user.anonymousAsNull = true }) { env, browser in
            let page = try await env.user(browser)
            #expect(page.status == 200)
            #expect(page.body == "null")
        }
    }

    @Test func userWithoutSlideDoesNotRenew() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            let page = try await browser.get(env.origin + "/bff/user?slide=false", headers: env.csrf)
            #expect(page.status == 200)
            #expect(page.headerValues("set-cookie").isEmpty)
        }
    }

    @Test func silentLoginWithoutIdPSession() async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(env.origin + "/bff/login?prompt=none")
            #expect(start.status == 302)
            let idpAnswer = try await browser.get(try #require(start.location))
            #expect(idpAnswer.status == 302)
            #expect(idpAnswer.location?.contains("error=login_required") == true)
            let page = try await browser.get(try #require(idpAnswer.location))
            #expect(page.status == 200)
            #expect(page.body.contains("isLoggedIn:false"))
            #expect(page.body.contains("bff-silent-login"))
            #expect(page.header("content-security-policy")?.contains("'nonce-") == true)
            #expect(page.header("cache-control") == "no-store")
        }
    }

    @Test func silentLoginWithIdPSession() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            browser.setCookie(host: "localhost", name: "__Host-bff-session", value: nil)
            let start = try await browser.get(env.origin + "/bff/login?prompt=none")
            let idpAnswer = try await browser.get(try #require(start.location))
            let page = try await browser.get(try #require(idpAnswer.location))
            #expect(page.status == 200)
            #expect(page.body.contains("isLoggedIn:true"))
            #expect(try await env.user(browser).status == 200)
        }
    }

    @Test func wrongPasswordStaysOnTheForm() async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(env.origin + "/bff/login")
            let form = try await browser.get(try #require(start.location))
            let requestID = try #require(TestEnvironment.extract(#"name="request_id" value=""#, from: form.body))
            let wrong = try await browser.postForm(
                env.issuer + "/authorize", [("request_id", requestID), ("username", "alice"), ("password", "nope")])
            #expect(wrong.status == 401)
            #expect(wrong.body.contains("Wrong user name or password"))
        }
    }

    @Test func healthAndReadiness() async throws {
        try await TestEnvironment.run { env, browser in
            let health = try await browser.get("http://127.0.0.1:\(env.adminPort)/healthz")
            // The first probe may find the IdP warm-up still under way (on a loaded machine); it
            // goes on in the background and a later probe is ready.
            let ready = try await eventually(attempts: 50, every: .milliseconds(100), until: { $0 == 200 }) {
                try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz").status
            }
            #expect(health.status == 200)
            #expect(ready == 200)
        }
        try await TestEnvironment.run(idpRunning: false) { env, browser in
            let health = try await browser.get("http://127.0.0.1:\(env.adminPort)/healthz")
            let ready = try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz")
            #expect(health.status == 200)
            #expect(ready.status == 503)
        }
    }

    @Test func diagnosticsOnlyInDevelopmentAndWithoutTokens() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            let page = try await browser.get(env.origin + "/bff/diagnostics", headers: env.csrf)
            #expect(page.status == 200)
            #expect(page.body.contains("\"sub\":\"alice-7f3b\""))
            #expect(!page.body.contains("eyJ"))
        }
        try await TestEnvironment.run(configure: { $0.server.environment = "production" }) { env, browser in
            try await env.login(browser)
            #expect(try await browser.get(env.origin + "/bff/diagnostics", headers: env.csrf).status == 404)
        }
    }

    @Test func spaIsServedWithHistoryFallback() async throws {
        try await TestEnvironment.run { env, browser in
            let index = try await browser.get(env.origin + "/")
            #expect(index.status == 200)
            #expect(index.body.contains("swift-bff demo"))
            let deep = try await browser.get(env.origin + "/some/client/route", headers: [("accept", "text/html")])
            #expect(deep.status == 200)
            #expect(deep.body.contains("swift-bff demo"))
            let api = try await browser.get(env.origin + "/api/nothing", headers: [("accept", "text/html")] + env.csrf)
            #expect(api.status == 404)
        }
    }
}
