import BFFCore
import BFFTesting
import Foundation
import Testing

@Suite("Hostile input never yields a 500 and never leaks a session")
struct HostileInputTests {
    @Test(arguments: [
        "//evil.example", "https://evil.example", "/\\evil.example", "%2F%2Fevil.example", "/%2F%2Fevil",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:%20x=y",
    ])
    func loginRejectsHostileReturnURL(_ value: String) async throws {
        try await TestEnvironment.run { env, browser in
            let page = try await browser.get(env.origin + "/bff/login?returnUrl=" + FormEncoding.escape(value))
            #expect(page.status == 400)
            #expect(page.body.contains("urn:bff:problem:invalid-return-url"))
            #expect(page.headerValues("set-cookie").isEmpty)
        }
    }

    @Test func loginRejectsUnknownPrompt() async throws {
        try await TestEnvironment.run { env, browser in
            let page = try await browser.get(env.origin + "/bff/login?prompt=evil")
            #expect(page.status == 400)
            #expect(page.body.contains("urn:bff:problem:invalid-prompt"))
        }
    }

    @Test func loginWithTheIdPDownIs503() async throws {
        try await TestEnvironment.run(idpRunning: false) { env, browser in
            let page = try await browser.get(env.origin + "/bff/login")
            #expect(page.status == 503)
            #expect(page.body.contains("urn:bff:problem:idp-unavailable"))
        }
    }

    @Test(arguments: [
        "", "?code=abc", "?state=", "?state=unknown&code=abc", "?state=%ZZ", "?error=access_denied&state=x",
        "?state=" + String(repeating: "a", count: 5000),
    ])
    func callbackGarbageIs400WithoutASession(_ query: String) async throws {
        try await TestEnvironment.run { env, browser in
            let page = try await browser.get(env.origin + "/signin-oidc" + query)
            #expect(page.status == 400)
            #expect(page.header("content-type")?.hasPrefix("text/html") == true)
            #expect(page.body.contains("Reference:"))
            #expect(page.header("cache-control") == "no-store")
            #expect(
                !page.headerValues("set-cookie").contains {
                    $0.hasPrefix("__Host-bff-session=") && !$0.contains("Max-Age=0")
                })
        }
    }

    @Test func callbackWithWrongStateForTheCookieIs400() async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(env.origin + "/bff/login")
            let location = try #require(start.location)
            let state = try #require(TestEnvironment.query(location)["state"])
            let page = try await browser.get(
                env.origin + "/signin-oidc?code=x&state=" + FormEncoding.escape(state + "x"))
            #expect(page.status == 400)
        }
    }

    @Test func callbackReplayIsRefused() async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(env.origin + "/bff/login")
            let savedCookies = browser.cookies(host: "localhost")
            let form = try await browser.get(try #require(start.location))
            let requestID = try #require(TestEnvironment.extract(#"name="request_id" value=""#, from: form.body))
            let submitted = try await browser.postForm(
                env.issuer + "/authorize", [("request_id", requestID), ("username", "alice"), ("password", "alice")])
            let callbackURL = try #require(submitted.location)
            let first = try await browser.get(callbackURL)
            #expect(first.status == 302)
            // Replay the same callback with the original login cookie restored, in a fresh browser.
            let attacker = TestBrowser()
            for (name, value) in savedCookies { attacker.setCookie(host: "localhost", name: name, value: value) }
            let replay = try await attacker.get(callbackURL)
            try await attacker.shutdown()
            #expect(replay.status == 400)
        }
    }

    @Test func callbackWithAForeignIssIsRefused() async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(env.origin + "/bff/login")
            let form = try await browser.get(try #require(start.location))
            let requestID = try #require(TestEnvironment.extract(#"name="request_id" value=""#, from: form.body))
            let submitted = try await browser.postForm(
                env.issuer + "/authorize", [("request_id", requestID), ("username", "alice"), ("password", "alice")])
            let url = try #require(submitted.location).replacingOccurrences(of: "iss=http", with: "iss=https")
            let page = try await browser.get(url)
            #expect(page.status == 400)
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func callbackWithAnIdPErrorIs400() async throws {
        try await TestEnvironment.run { env, browser in
            let start = try await browser.get(env.origin + "/bff/login")
            let location = try #require(start.location)
            let state = try #require(TestEnvironment.query(location)["state"])
            let page = try await browser.get(
                env.origin + "/signin-oidc?error=access_denied&iss=" + FormEncoding.escape(env.issuer) + "&state="
                    + FormEncoding.escape(state))
            #expect(page.status == 400)
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test(arguments: [
        "garbage", "", "AQ", "AQRkZW1v" + String(repeating: "A", count: 200), String(repeating: "x", count: 3000),
        "\"quoted\"",
    ])
    func malformedSessionCookieIsAnonymous(_ value: String) async throws {
        try await TestEnvironment.run { env, browser in
            browser.setCookie(host: "localhost", name: "__Host-bff-session", value: value)
            let user = try await env.user(browser)
            #expect(user.status == 401)
            #expect(user.body.contains("urn:bff:problem:unauthenticated"))
            let api = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf)
            #expect(api.status == 401)
        }
    }

    @Test func tamperedSessionCookieIsAnonymous() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            let value = try #require(browser.cookies(host: "localhost")["__Host-bff-session"])
            var bytes = Array(value.utf8)
            bytes[bytes.count - 5] = bytes[bytes.count - 5] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a")
            browser.setCookie(
                host: "localhost", name: "__Host-bff-session", value: String(decoding: bytes, as: UTF8.self))
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func oversizedHeadersAreRefusedWithoutCrashing() async throws {
        try await TestEnvironment.run { env, browser in
            // A head over server.maxHeaderBytes (32 KiB): refused by the parser with 400, on a raw
            // socket so the answer is seen whatever the client library would do with it.
            let port = try #require(env.origin.split(separator: ":").last.flatMap { Int($0) })
            let client = try await RawConnection.open(port: port)
            try await client.send(
                "GET /bff/user HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nCookie: big="
                    + String(repeating: "a", count: 40_000) + "\r\n\r\n")
            #expect(try await client.waitFor(bytes: 12), "an answer, not a silent close")
            #expect(client.received.status == 400, "\(client.received.head)")
            await client.reset()
            let after = try await env.user(browser)
            #expect(after.status == 401, "server still answers")
        }
    }

    @Test func antiForgeryTable() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            let cases: [([(String, String)], Int)] = [
                ([], 401), ([("X-CSRF", "0")], 401), ([("X-CSRF", "true")], 401),
                ([("X-CSRF", "1"), ("X-CSRF", "1")], 401),
                ([("X-CSRF", "1"), ("Sec-Fetch-Site", "cross-site")], 401),
                ([("X-CSRF", "1"), ("Origin", "https://evil.example")], 401),
                ([("X-CSRF", "1"), ("Origin", "null")], 401),
                ([("X-CSRF", "1"), ("Origin", env.origin)], 200),
                ([("X-CSRF", "1"), ("Sec-Fetch-Site", "same-origin")], 200),
            ]
            for (headers, expected) in cases {
                for path in ["/bff/user", "/api/weatherforecast"] {
                    let page = try await browser.get(env.origin + path, headers: headers)
                    #expect(page.status == expected, "\(path) with \(headers)")
                    if expected == 401 { #expect(page.body.contains("urn:bff:problem:antiforgery")) }
                }
            }
        }
    }

    @Test func anonymousWithoutHeaderGetsAntiforgeryFirst() async throws {
        try await TestEnvironment.run { env, browser in
            let page = try await browser.get(env.origin + "/bff/user")
            #expect(page.status == 401)
            #expect(page.body.contains("urn:bff:problem:antiforgery"))
        }
    }

    @Test func logoutRequiresTheRightSid() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            for query in ["", "?sid=", "?sid=wrong", "?sid=%00"] {
                let page = try await browser.get(env.origin + "/bff/logout" + query)
                #expect(page.status == 400, "logout\(query)")
                #expect(page.body.contains("urn:bff:problem:invalid-sid"))
            }
            #expect(try await env.user(browser).status == 200, "session survives")
        }
    }

    @Test func crossSiteLogoutEndsNothing() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            let url = try await env.logoutURL(browser)
            for headers in [[("Sec-Fetch-Site", "cross-site")], [("Origin", "https://evil.example")]] {
                let page = try await browser.get(url, headers: headers)
                #expect(page.status == 401)
                #expect(page.headerValues("set-cookie").isEmpty)
            }
            #expect(try await env.user(browser).status == 200, "session survives")
            #expect(await env.idp.statistics().revocationRequests == 0)
        }
    }

    @Test func logoutRejectsHostileReturnURL() async throws {
        try await TestEnvironment.run { env, browser in
            try await env.login(browser)
            let page = try await browser.get(
                try await env.logoutURL(browser) + "&returnUrl=" + FormEncoding.escape("//evil.example"))
            #expect(page.status == 400)
            #expect(try await env.user(browser).status == 200)
        }
    }

    @Test func postLogoutCallbackWithoutStateGoesHome() async throws {
        try await TestEnvironment.run { env, browser in
            for query in ["", "?state=forged"] {
                let page = try await browser.get(env.origin + "/signout-callback-oidc" + query)
                #expect(page.status == 302)
                #expect(page.header("location") == "/")
            }
        }
    }

    @Test func pendingLoginsAreCappedAtFive() async throws {
        try await TestEnvironment.run { env, browser in
            for _ in 0..<8 { _ = try await browser.get(env.origin + "/bff/login") }
            let pending = browser.cookies(host: "localhost").keys.filter { $0.hasPrefix("__Host-bff-login.") }
            #expect(pending.count == 5)
        }
    }

    @Test func pathTraversalOnStaticFilesIsRefused() async throws {
        try await TestEnvironment.run { env, browser in
            for path in ["/../Package.swift", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd"] {
                let page = try await browser.get(env.origin + path)
                #expect(!page.body.contains("root:"), "\(path)")
                #expect(page.status != 500)
            }
        }
    }
}
