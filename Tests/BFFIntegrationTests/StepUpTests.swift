import BFFCore
import BFFTesting
import Foundation
import Testing

@testable import BFFGateway

/// Step-up (SPEC §11.4): routes with `requireAcr` / `maxAuthAge` refuse a weaker or older
/// session with 401 `step-up-required`; `/bff/login?acrValues=&maxAge=` asks the IdP for more, and
/// the callback keeps only what the ID token proves.
@Suite("Step-up authentication")
struct StepUpTests {
    static func withRoutes(
        clock: ManualTimeSource? = nil, _ body: @Sendable (TestEnvironment, TestBrowser, String) async throws -> Void
    ) async throws {
        let echoPort = try await TestServers.freePort()
        let echo = "http://127.0.0.1:\(echoPort)"
        try await TestEnvironment.run(
            extraServices: [EchoUpstream.makeApplication(port: echoPort, logger: TestEnvironment.quietLogger)],
            extraPorts: [echoPort], gatewayTime: clock, idpTime: clock,
            configure: { configuration in
                var admin = APIRouteConfiguration(path: "/api/admin", upstream: echo + "/echo/admin", token: .user)
                admin.requireAcr = ["mfa"]
                var recent = APIRouteConfiguration(path: "/api/recent", upstream: echo + "/echo/recent", token: .user)
                recent.maxAuthAge = .seconds(300)
                configuration.apis += [
                    admin, recent,
                    APIRouteConfiguration(path: "/api/echo", upstream: echo + "/echo", token: .user),
                ]
            }
        ) { env, browser in try await body(env, browser, echo) }
    }

    /// `/bff/login` with `query`, through the dev IdP's form (with `otp` when given); the callback's answer.
    static func login(
        _ env: TestEnvironment, _ browser: TestBrowser, query: String, otp: String?
    ) async throws -> TestBrowser.Page {
        let start = try await browser.get(env.origin + "/bff/login?" + query)
        try #require(start.status == 302, "\(start.status) \(start.body)")
        let form = try await browser.get(try #require(start.location))
        try #require(form.status == 200, "the IdP asks again: \(form.status)")
        let requestID = try #require(TestEnvironment.extract(#"name="request_id" value=""#, from: form.body))
        var fields = [("request_id", requestID), ("username", "alice"), ("password", "alice")]
        if let otp { fields.append(("otp", otp)) }
        let submitted = try await browser.postForm(env.issuer + "/authorize", fields)
        try #require(submitted.status == 302, "form: \(submitted.status) \(submitted.body)")
        return try await browser.get(try #require(submitted.location))
    }

    @Test func aPasswordSessionStepsUpToMFA() async throws {
        try await Self.withRoutes { env, browser, _ in
            try await env.login(browser)
            #expect(try await browser.get(env.origin + "/api/echo/x", headers: env.csrf).status == 200)
            let refused = try await browser.get(env.origin + "/api/admin/x", headers: env.csrf)
            #expect(refused.status == 401)
            #expect(refused.header("content-type") == "application/problem+json")
            #expect(refused.body.contains(#""type":"urn:bff:problem:step-up-required""#))
            #expect(refused.body.contains(#""acrValues":"mfa""#))
            #expect(!refused.body.contains("maxAge"))

            let callback = try await Self.login(env, browser, query: "acrValues=mfa&returnUrl=%2Fadmin", otp: "246810")
            #expect(callback.status == 302)
            #expect(callback.header("location") == "/admin")
            let allowed = try await browser.get(env.origin + "/api/admin/x", headers: env.csrf)
            #expect(allowed.status == 200, "\(allowed.body)")
        }
    }

    /// The IdP answers an acr_values=mfa login with `pwd` (the user skipped the code): no session
    /// claiming `mfa`; the earlier session stays as it was.
    @Test func aWeakerAnswerIsRefusedAndTheOldSessionKept() async throws {
        try await Self.withRoutes { env, browser, _ in
            try await env.login(browser)
            let callback = try await Self.login(env, browser, query: "acrValues=mfa", otp: nil)
            #expect(callback.status == 400, "the error page: the ID token's acr is pwd")
            #expect(try await env.user(browser).status == 200, "the earlier session is untouched")
            #expect(try await browser.get(env.origin + "/api/admin/x", headers: env.csrf).status == 401)
        }
    }

    @Test func anOldAuthenticationNeedsAFreshOne() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await Self.withRoutes(clock: clock) { env, browser, _ in
            try await env.login(browser)
            #expect(try await browser.get(env.origin + "/api/recent/x", headers: env.csrf).status == 200)
            clock.advance(by: 301)
            let refused = try await browser.get(env.origin + "/api/recent/x", headers: env.csrf)
            #expect(refused.status == 401)
            #expect(refused.body.contains(#""maxAge":300"#))
            #expect(!refused.body.contains("acrValues"))
            // max_age=300 makes the IdP ask again (its session is 301 s old), and auth_time is new.
            let callback = try await Self.login(env, browser, query: "maxAge=300", otp: nil)
            #expect(callback.status == 302)
            #expect(try await browser.get(env.origin + "/api/recent/x", headers: env.csrf).status == 200)
        }
    }

    @Test func hostileLoginParametersAreRefused() async throws {
        try await Self.withRoutes { env, browser, _ in
            for query in [
                "acrValues=", "acrValues=a%22b", "acrValues=" + Array(repeating: "a", count: 9).joined(separator: "+"),
                "maxAge=-1", "maxAge=1e3", "maxAge=9999999999", "acrValues=" + String(repeating: "x", count: 65),
            ] {
                let page = try await browser.get(env.origin + "/bff/login?" + query)
                #expect(page.status == 400, "\(query): \(page.status)")
            }
            let start = try await browser.get(env.origin + "/bff/login?acrValues=mfa+urn%3Aacr%3A2&maxAge=0")
            let query = TestEnvironment.query(try #require(start.location))
            #expect(query["acr_values"] == "mfa urn:acr:2")
            #expect(query["max_age"] == "0")
        }
    }

    @Test func validationNeedsAUserRouteAndSaneValues() {
        var configuration = BFFConfiguration()
        var route = APIRouteConfiguration(path: "/api/a", upstream: "http://127.0.0.1:1/", token: .userOrNone)
        route.requireAcr = ["mfa", "bad value"]
        route.maxAuthAge = .zero
        configuration.apis = [route]
        let problems = configuration.validate().map(\.description)
        #expect(problems.contains { $0.contains("apis[0].token: requireAcr and maxAuthAge need the user's session") })
        #expect(problems.contains { $0.contains("apis[0].requireAcr: 'bad value' is not an acr value") })
        #expect(problems.contains { $0.contains("apis[0].maxAuthAge: must be positive") })
    }
}
