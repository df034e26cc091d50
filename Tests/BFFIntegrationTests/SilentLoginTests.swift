import BFFCore
import BFFTesting
import Foundation
import Testing

@testable import BFFGateway
@testable import BFFHummingbird

/// Silent login without third-party cookies (SPEC §11.4): `prompt=none` as a top-level navigation
/// comes back to `returnUrl` with `bff-login=success|none`, never to an error page; the iframe
/// mode and Duende v3's `/bff/silent-login` paths keep §3's page.
@Suite("Silent login")
struct SilentLoginTests {
    static let document = [("Sec-Fetch-Dest", "document")]

    /// Follows a top-level `prompt=none` login through the dev IdP; returns the callback's answer.
    static func silent(_ env: TestEnvironment, _ browser: TestBrowser, returnURL: String) async throws
        -> TestBrowser.Page
    {
        let start = try await browser.get(
            env.origin + "/bff/login?prompt=none&returnUrl=" + FormEncoding.escape(returnURL), headers: document)
        try #require(start.status == 302)
        let authorize = try await browser.get(try #require(start.location))
        try #require(authorize.status == 302, "prompt=none never shows the login form")
        return try await browser.get(try #require(authorize.location))
    }

    @Test func topLevelWithAnIdPSessionComesBackSignedIn() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            // The BFF session ends (here: logout at the BFF only); the IdP's session lives on.
            browser.setCookie(host: "localhost", name: "__Host-bff-session", value: nil)
            #expect(try await env.user(browser).status == 401)
            let back = try await Self.silent(env, browser, returnURL: "/orders?page=2#top")
            #expect(back.status == 302)
            #expect(back.header("location") == "/orders?page=2&bff-login=success#top")
            #expect(back.headerValues("set-cookie").contains { $0.hasPrefix("__Host-bff-session=") })
            #expect(try await env.user(browser).status == 200)
        }
    }

    @Test func topLevelWithoutAnIdPSessionComesBackWithNone() async throws {
        try await TestEnvironment.run { env, browser in
            let back = try await Self.silent(env, browser, returnURL: "/")
            #expect(back.status == 302, "never the error page: \(back.body)")
            #expect(back.header("location") == "/?bff-login=none")
            #expect(
                !back.headerValues("set-cookie").contains {
                    $0.hasPrefix("__Host-bff-session=") && !$0.contains("Max-Age=0")
                })
            #expect(try await env.user(browser).status == 401)
        }
    }

    /// A transaction that is not proven ours (forged state) still gets the error page: the
    /// return URL of an unverified request is never followed.
    @Test func anUnprovenCallbackIsStillAnErrorPage() async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(
                env.origin + "/bff/login?prompt=none&returnUrl=%2Fx", headers: Self.document)
            #expect(start.status == 302)
            let forged = try await browser.get(env.origin + "/signin-oidc?state=forged&error=login_required")
            #expect(forged.status == 400)
            #expect(forged.header("location") == nil)
        }
    }

    @Test(arguments: [nil, "iframe"])
    func iframeModeKeepsThePage(dest: String?) async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(
                env.origin + "/bff/login?prompt=none&returnUrl=%2Fx",
                headers: dest.map { [("Sec-Fetch-Dest", $0)] } ?? [])
            let authorize = try await browser.get(try #require(start.location))
            let page = try await browser.get(try #require(authorize.location))
            #expect(page.status == 200)
            #expect(page.body.contains(#"postMessage({source:"bff-silent-login",isLoggedIn:false}"#))
        }
    }

    /// Duende v3: `/bff/silent-login` starts a prompt=none login answered by the iframe page,
    /// whatever the fetch destination; `/bff/silent-login-callback` answers for the current session.
    @Test func duendeSilentLoginPaths() async throws {
        try await TestEnvironment.run { env, browser in
            let before = try await browser.get(env.origin + "/bff/silent-login-callback")
            #expect(before.body.contains("isLoggedIn:false"))
            try await env.login(browser)
            let after = try await browser.get(env.origin + "/bff/silent-login-callback")
            #expect(after.status == 200)
            #expect(after.body.contains("isLoggedIn:true"))
            browser.setCookie(host: "localhost", name: "__Host-bff-session", value: nil)
            let start = try await browser.get(env.origin + "/bff/silent-login", headers: Self.document)
            let query = TestEnvironment.query(try #require(start.location))
            #expect(query["prompt"] == "none")
            let authorize = try await browser.get(try #require(start.location))
            let page = try await browser.get(try #require(authorize.location))
            #expect(page.status == 200)
            #expect(page.body.contains("isLoggedIn:true"), "the IdP session signed the iframe in")
        }
    }

    @Test func returnURLsGetTheParameterInTheRightPlace() {
        typealias B = BFF
        #expect(B.appending("bff-login=none", to: "/") == "/?bff-login=none")
        #expect(B.appending("bff-login=none", to: "/a?b=1") == "/a?b=1&bff-login=none")
        #expect(B.appending("bff-login=none", to: "/a?") == "/a?bff-login=none")
        #expect(B.appending("bff-login=none", to: "/a#f?x") == "/a?bff-login=none#f?x")
        #expect(B.appending("bff-login=none", to: "/x?bff-login=success&a=1") == "/x?a=1&bff-login=none", "replaced")
        #expect(B.appending("bff-login=none", to: "/x?bff-login=success") == "/x?bff-login=none")
    }
}
