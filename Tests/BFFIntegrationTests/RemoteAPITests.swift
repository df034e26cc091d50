import BFFCore
import BFFForwarder
import BFFTesting
import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Testing

@testable import BFFGateway

@Suite("Remote APIs through the gateway")
struct RemoteAPITests {
    /// Runs the standard environment plus an echo upstream behind several routes.
    func withProxy(
        accessTokenLifetime: Int64 = 300, refreshBefore: Duration = .seconds(60), upstreamIdleTimeout: Duration? = nil,
        clock: ManualTimeSource? = nil, cookieMode: Bool = false, serverIdleTimeout: Duration? = nil,
        idpResources: [String] = [], fastPath: Bool = true, apiCalls: APICallLog? = nil,
        forwarder: NIOUpstream.Configuration = .init(), logger: Logger? = nil,
        extraServices: [any Service] = [], extraPorts: [Int] = [], accessLog: Bool = false,
        otlpEndpoint: String? = nil,
        configure: @escaping (inout BFFConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestEnvironment, TestBrowser, Int) async throws -> Void
    ) async throws {
        let echoPort = try await TestServers.freePort()
        let echo = "http://127.0.0.1:\(echoPort)"
        try await TestEnvironment.run(
            accessTokenLifetime: accessTokenLifetime,
            extraServices: [
                EchoUpstream.makeApplication(
                    port: echoPort, idleTimeout: upstreamIdleTimeout, logger: TestEnvironment.quietLogger)
            ] + extraServices,
            extraPorts: [echoPort] + extraPorts,
            gatewayTime: clock, apiFastPath: fastPath, forwarderConfiguration: forwarder, apiCalls: apiCalls,
            gatewayLogger: logger, accessLog: accessLog, otlpEndpoint: otlpEndpoint,
            configure: { configuration in
                defer { configure(&configuration) }
                configuration.tokens.refreshBeforeExpiry = refreshBefore
                if cookieMode { configuration.session.store = .cookie }
                if let serverIdleTimeout { configuration.server.idleTimeout = serverIdleTimeout }
                configuration.server.environment = "development"
                configuration.diagnostics.showTokens = true
                configuration.apis += [
                    APIRouteConfiguration(path: "/api/echo", upstream: echo + "/echo", token: .user),
                    APIRouteConfiguration(path: "/api/public", upstream: echo + "/echo/public", token: .none),
                    APIRouteConfiguration(path: "/api/maybe", upstream: echo + "/echo/maybe", token: .userOrNone),
                    APIRouteConfiguration(path: "/api/either", upstream: echo + "/echo/either", token: .userOrClient),
                    APIRouteConfiguration(
                        path: "/api/service", upstream: echo + "/echo/service", token: .client, scopes: ["api"]),
                    APIRouteConfiguration(path: "/api/misc", upstream: echo, token: .none, timeout: .seconds(1)),
                    // The same upstream with the default timeout, for calls whose subject is not a
                    // timeout (a loaded machine can take a second to answer them).
                    APIRouteConfiguration(path: "/api/bulk", upstream: echo, token: .none),
                    APIRouteConfiguration(path: "/api/dead", upstream: "http://127.0.0.1:1/x", token: .none),
                ]
                // User tokens per resource need a server-side store (refused in cookie mode).
                if !cookieMode {
                    configuration.apis += [
                        APIRouteConfiguration(
                            path: "/api/orders", upstream: echo + "/echo/orders", token: .user,
                            resource: RemoteAPITests.orders),
                        APIRouteConfiguration(
                            path: "/api/billing", upstream: echo + "/echo/billing", token: .user,
                            resource: RemoteAPITests.billing),
                        APIRouteConfiguration(
                            path: "/api/unknown-resource", upstream: echo + "/echo/unknown", token: .user,
                            resource: "https://unknown.example"),
                        APIRouteConfiguration(
                            path: "/api/unknown-or-none", upstream: echo + "/echo/unknown", token: .userOrNone,
                            resource: "https://unknown.example"),
                    ]
                }
            },
            configureIdP: { idp in idp.resources = idpResources }
        ) { env, browser in try await body(env, browser, echoPort) }
    }

    func echoed(_ page: TestBrowser.Page) throws -> EchoedRequest {
        try #require(page.status == 200, "status \(page.status): \(page.body)")
        return try EchoedRequest(json: page.body)
    }

    /// Leaves idle upstream connections in every event loop's pool: concurrent calls open several
    /// client connections, which the server spreads over its event loops.
    func warmUpstreamPools(_ env: TestEnvironment, _ browser: TestBrowser, path: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {  // justified: structured child task of the group
                    // Warming only: a keep-alive connection the gateway closed meanwhile is no failure.
                    _ = try? await browser.get(env.origin + path, headers: env.csrf)
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func userTokenReachesTheUpstreamAndClientSecretsDoNot() async throws {
        try await withProxy { env, browser, _ in
            try await env.login(browser)
            // Twice: once on the normal path, once after warming every event loop's upstream pool,
            // so that the call is served on the event loop (fast path); both apply the same policy.
            for round in 0..<2 {
                if round == 1 { try await warmUpstreamPools(env, browser, path: "/api/echo") }
                let page = try await browser.get(
                    env.origin + "/api/echo/items/7?q=a%20b&x=1",
                    headers: env.csrf + [
                        ("Authorization", "Bearer forged"), ("X-Forwarded-For", "6.6.6.6"),
                        ("X-Forwarded-Host", "evil.example"),
                        ("Forwarded", "for=6.6.6.6"), ("Connection", "x-private"), ("X-Private", "secret"),
                        ("Keep-Alive", "timeout=1"),
                        ("TE", "trailers"), ("X-Request-Id", "r-1"),
                    ])
                let seen = try echoed(page)
                #expect(seen.path == "/echo/items/7")
                #expect(seen.query == "q=a%20b&x=1")
                let authorization = try #require(seen.values("authorization").first)
                #expect(seen.values("authorization").count == 1)
                #expect(authorization.hasPrefix("Bearer eyJ"), "the user's access token, not the client's")
                #expect(!authorization.contains("forged"))
                #expect(seen.values("cookie").isEmpty)
                #expect(seen.values("x-csrf").isEmpty)
                #expect(seen.values("x-private").isEmpty)
                #expect(seen.values("keep-alive").isEmpty)
                #expect(seen.values("te").isEmpty)
                #expect(seen.values("forwarded").isEmpty)
                #expect(seen.values("x-forwarded-for") == ["127.0.0.1"], "spoofed value replaced")
                #expect(seen.values("x-forwarded-host") == [String(env.origin.dropFirst("http://".count))])
                #expect(seen.values("x-forwarded-proto") == ["http"])
                #expect(seen.values("x-request-id") == ["r-1"])
                if round == 1 { #expect(env.forwarder.fastExchangeCount >= 1, "the second call took the fast path") }
            }
        }
    }

    @Test func tokenTypesAnonymousAndLoggedIn() async throws {
        try await withProxy { env, browser, _ in
            // Anonymous.
            #expect(try await browser.get(env.origin + "/api/echo", headers: env.csrf).status == 401)
            #expect(
                try echoed(try await browser.get(env.origin + "/api/public", headers: env.csrf)).values("authorization")
                    .isEmpty)
            #expect(
                try echoed(try await browser.get(env.origin + "/api/maybe", headers: env.csrf)).values("authorization")
                    .isEmpty)
            let eitherAnonymous = try echoed(try await browser.get(env.origin + "/api/either", headers: env.csrf))
            let clientToken = try #require(eitherAnonymous.values("authorization").first)
            let service = try echoed(try await browser.get(env.origin + "/api/service", headers: env.csrf))
            #expect(service.values("authorization").first?.hasPrefix("Bearer ") == true)
            // Logged in.
            try await env.login(browser)
            let user = try echoed(try await browser.get(env.origin + "/api/echo", headers: env.csrf))
            let userToken = try #require(user.values("authorization").first)
            #expect(userToken != clientToken)
            #expect(
                try echoed(try await browser.get(env.origin + "/api/maybe", headers: env.csrf)).values("authorization")
                    == [userToken])
            #expect(
                try echoed(try await browser.get(env.origin + "/api/either", headers: env.csrf)).values("authorization")
                    == [userToken])
            #expect(
                try echoed(try await browser.get(env.origin + "/api/public", headers: env.csrf)).values("authorization")
                    .isEmpty)
            let serviceAgain = try echoed(try await browser.get(env.origin + "/api/service", headers: env.csrf))
            #expect(serviceAgain.values("authorization") == service.values("authorization"), "client token cached")
            #expect(
                env.gateway.bff.clientCredentialsRequestCount == 2, "one per scope set (either: none, service: api)")
        }
    }

    @Test func antiForgeryAppliesToEveryRoute() async throws {
        try await withProxy { env, browser, _ in
            for path in ["/api/public", "/api/echo", "/api/service"] {
                let page = try await browser.get(env.origin + path)
                #expect(page.status == 401)
                #expect(page.body.contains("urn:bff:problem:antiforgery"))
            }
        }
    }

    @Test(arguments: [
        "/api/echo/../admin", "/api/echo/%2e%2e/admin", "/api/echo/a%2fb", "/api/echo/%00", "/api/echo/a%5cb",
    ])
    func hostilePathsAre400(_ path: String) async throws {
        try await withProxy { env, browser, _ in
            let page = try await browser.get(env.origin + path, headers: env.csrf)
            #expect(page.status == 400)
            #expect(page.body.contains("urn:bff:problem:invalid-path"))
        }
    }

    @Test func prefixMatchStopsAtSegmentBoundaries() async throws {
        try await withProxy { env, browser, _ in
            let page = try await browser.get(env.origin + "/api/echox", headers: env.csrf)
            #expect(page.status == 404)
        }
    }

    @Test func upstreamStatusesPassThroughAndFailuresAreProblems() async throws {
        try await withProxy { env, browser, _ in
            for code in [401, 403, 404, 500, 503] {
                let page = try await browser.get(env.origin + "/api/bulk/status/\(code)", headers: env.csrf)
                #expect(page.status == code)
                #expect(page.body == "status \(code)")
            }
            let dead = try await browser.get(env.origin + "/api/dead", headers: env.csrf)
            #expect(dead.status == 502)
            #expect(dead.body.contains("urn:bff:problem:upstream-unavailable"))
            #expect(env.forwarder.fastExchangeCount >= 1, "statuses passed through the fast path too")
            try await warmUpstreamPools(env, browser, path: "/api/bulk/status/200")
            let fastBefore = env.forwarder.fastExchangeCount
            let started = ContinuousClock.now
            let slow = try await browser.get(env.origin + "/api/misc/slow/5000", headers: env.csrf)
            #expect(slow.status == 504)
            #expect(slow.body.contains("urn:bff:problem:upstream-timeout"))
            let elapsed = ContinuousClock.now - started
            // One exchange (a retry would start a second one), answered at the 1 s route timeout:
            // well before the upstream's 5 s even on a loaded machine.
            #expect(env.forwarder.fastExchangeCount == fastBefore + 1, "the slow call took the fast path, once")
            #expect(
                elapsed >= .seconds(1) && elapsed < .milliseconds(4600), "answered at the route timeout: \(elapsed)")
        }
    }

    @Test func responseHeaderPolicy() async throws {
        try await withProxy { env, browser, _ in
            for _ in 0..<2 {  // normal path, then fast path on the idle connection
                let cookies = try await browser.get(env.origin + "/api/misc/set-cookie", headers: env.csrf)
                let set = cookies.headerValues("set-cookie")
                #expect(set == ["app=ok; Path=/"], "BFF cookie names are filtered")
                let hop = try await browser.get(env.origin + "/api/misc/hop", headers: env.csrf)
                #expect(hop.header("x-hop") == nil)
                #expect(hop.header("keep-alive") == nil)
                #expect(hop.header("x-end-to-end") == "kept")
            }
            #expect(env.forwarder.fastExchangeCount >= 2)
        }
    }

    @Test func bodiesStreamBothWays() async throws {
        try await withProxy { env, browser, _ in
            let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let upload = try await browser.request(
                "POST", env.origin + "/api/public/upload",
                headers: env.csrf + [("content-type", "application/octet-stream")],
                body: payload)
            let seen = try echoed(upload)
            #expect(seen.bodyLength == payload.count)
            #expect(seen.bodySHA256 == SHA256.hash(data: payload).map { String(format: "%02x", $0) }.joined())
            let download = try await browser.get(env.origin + "/api/misc/download/5000000", headers: env.csrf)
            #expect(download.status == 200)
            #expect(download.body.utf8.count == 5_000_000)
        }
    }

    @Test func transparentRefresh() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await withProxy(clock: clock) { env, browser, _ in
            try await env.login(browser)
            let first = try echoed(try await browser.get(env.origin + "/api/echo", headers: env.csrf)).values(
                "authorization")
            clock.advance(by: 241)  // the 300 s token now expires within refreshBeforeExpiry (60 s)
            let second = try echoed(try await browser.get(env.origin + "/api/echo", headers: env.csrf)).values(
                "authorization")
            #expect(first != second, "a new access token after expiry")
            #expect(await env.idp.statistics().refreshRequests == 1)
            let third = try echoed(try await browser.get(env.origin + "/api/echo", headers: env.csrf)).values(
                "authorization")
            #expect(third == second, "the refreshed token was stored in the session")
            #expect(await env.idp.statistics().refreshRequests == 1)
        }
    }

    @Test func fiftyConcurrentCallsCauseOneRefresh() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await withProxy(clock: clock) { env, browser, _ in
            try await env.login(browser)
            clock.advance(by: 241)
            let statuses = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let page = try await browser.get(env.origin + "/api/echo", headers: env.csrf)
                        return (page.status, (try? EchoedRequest(json: page.body).values("authorization").first) ?? "")
                    }
                }
                return try await group.reduce(into: [(Int, String)]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0.0 == 200 })
            #expect(Set(statuses.map(\.1)).count == 1, "all fifty used the same new token")
            #expect(await env.idp.statistics().refreshRequests == 1, "exactly one refresh-token request at the IdP")
            #expect(await env.idp.statistics().refreshReuseDetected == 0)
        }
    }

    static let orders = "https://orders.example"
    static let billing = "https://billing.example"

    /// The `aud` claim of the bearer token an upstream saw.
    func audience(_ seen: EchoedRequest) throws -> String {
        let authorization = try #require(seen.values("authorization").first)
        let parts = authorization.dropFirst("Bearer ".count).split(separator: ".")
        try #require(parts.count == 3)
        let payload = try #require(Base64URL.decode(Array(parts[1].utf8)))
        let claims = try #require(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])
        return try #require(claims["aud"] as? String)
    }

    // RFC 8707: routes naming a resource get a user token for it (refresh grant with `resource=`).

    @Test func resourceRoutesGetTheirOwnUserToken() async throws {
        try await withProxy(idpResources: [RemoteAPITests.orders, RemoteAPITests.billing]) { env, browser, _ in
            try await env.login(browser)
            let main = try echoed(try await browser.get(env.origin + "/api/echo", headers: env.csrf))
            #expect(try audience(main) == "api")
            let first = try echoed(try await browser.get(env.origin + "/api/orders/7", headers: env.csrf))
            #expect(try audience(first) == RemoteAPITests.orders)
            #expect(first.path == "/echo/orders/7")
            #expect(await env.idp.statistics().refreshRequests == 1, "one refresh grant for the resource")
            // Held in the session: later calls (router or event-loop fast path) reuse it.
            try await warmUpstreamPools(env, browser, path: "/api/orders")
            let fastBefore = env.forwarder.fastExchangeCount
            for _ in 0..<5 {
                let again = try echoed(try await browser.get(env.origin + "/api/orders", headers: env.csrf))
                #expect(again.values("authorization") == first.values("authorization"))
            }
            #expect(env.forwarder.fastExchangeCount > fastBefore, "the resource token is served on the fast path too")
            #expect(await env.idp.statistics().refreshRequests == 1)
            let billing = try echoed(try await browser.get(env.origin + "/api/billing", headers: env.csrf))
            #expect(try audience(billing) == RemoteAPITests.billing)
            let mainAgain = try echoed(try await browser.get(env.origin + "/api/echo", headers: env.csrf))
            #expect(
                mainAgain.values("authorization") == main.values("authorization"), "the session's own token is kept")
            #expect(await env.idp.statistics().refreshReuseDetected == 0)
        }
    }

    /// Concurrent calls for the session's own token and two resources on an expiring session: the
    /// refreshes of one session are serialised, so no refresh token is ever spent twice (the dev
    /// IdP, like Glewlwyd, revokes the whole family when one is).
    @Test func concurrentRefreshesForSeveralResourcesNeverReuseARefreshToken() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await withProxy(clock: clock, idpResources: [RemoteAPITests.orders, RemoteAPITests.billing]) {
            env, browser, _ in
            try await env.login(browser)
            clock.advance(by: 241)
            let paths = ["/api/echo", "/api/orders", "/api/billing"]
            let results = try await withThrowingTaskGroup(of: (String, Int, String).self) { group in
                for index in 0..<30 {
                    group.addTask {
                        let path = paths[index % 3]
                        let page = try await browser.get(env.origin + path, headers: env.csrf)
                        let token = (try? EchoedRequest(json: page.body).values("authorization").first) ?? ""
                        return (path, page.status, token)
                    }
                }
                return try await group.reduce(into: [(String, Int, String)]()) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.1 == 200 }, "\(results.map(\.1))")
            for path in ["/api/orders", "/api/billing"] {
                #expect(Set(results.filter { $0.0 == path }.map(\.2)).count == 1, "one token for \(path)")
            }
            #expect(await env.idp.statistics().refreshReuseDetected == 0)
            let refreshes = await env.idp.statistics().refreshRequests
            #expect((2...3).contains(refreshes), "one per resource, and the session's own unless already rotated")
            #expect(try await env.user(browser).status == 200, "the session lives on")
        }
    }

    @Test func aResourceTheIdPRefusesIs403AndKeepsTheSession() async throws {
        try await withProxy(idpResources: [RemoteAPITests.orders]) { env, browser, _ in
            try await env.login(browser)
            let refused = try await browser.get(env.origin + "/api/unknown-resource", headers: env.csrf)
            #expect(refused.status == 403)
            #expect(refused.body.contains("urn:bff:problem:forbidden"))
            #expect(refused.headerValues("set-cookie").isEmpty, "the session cookie is left alone")
            // user-or-none goes on without a user token.
            let anonymous = try echoed(try await browser.get(env.origin + "/api/unknown-or-none", headers: env.csrf))
            #expect(anonymous.values("authorization").isEmpty)
            #expect(try await env.user(browser).status == 200)
            let orders = try echoed(try await browser.get(env.origin + "/api/orders", headers: env.csrf))
            #expect(try audience(orders) == RemoteAPITests.orders, "the refresh token still works")
            #expect(await env.idp.statistics().refreshReuseDetected == 0)
        }
    }

    @Test func rejectedRefreshEndsTheSession() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await withProxy(clock: clock) { env, browser, _ in
            try await env.login(browser)
            let diagnostics = try await browser.get(env.origin + "/bff/diagnostics", headers: env.csrf)
            let refreshToken = try #require(TestEnvironment.extract(#""refreshToken":""#, from: diagnostics.body))
            let revoked = try await browser.postForm(
                env.issuer + "/revoke",
                [("token", refreshToken), ("client_id", "bff-demo"), ("client_secret", DemoSetupSecret.value)])
            #expect(revoked.status == 200)
            clock.advance(by: 241)
            let page = try await browser.get(env.origin + "/api/echo", headers: env.csrf)
            #expect(page.status == 401)
            #expect(page.body.contains("urn:bff:problem:session-expired"))
            #expect(
                page.headerValues("set-cookie").contains {
                    $0.hasPrefix("__Host-bff-session=;") && $0.contains("Max-Age=0")
                })
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func idpDownDuringRefreshIs503AndKeepsTheSession() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await withProxy(clock: clock) { env, browser, _ in
            try await env.login(browser)
            clock.advance(by: 241)
            env.idpLink.setReachable(false)
            let page = try await browser.get(env.origin + "/api/echo", headers: env.csrf)
            #expect(page.status == 503)
            #expect(page.body.contains("urn:bff:problem:idp-unavailable"))
            #expect(page.headerValues("set-cookie").isEmpty, "the session is kept")
            env.idpLink.setReachable(true)
            let again = try await browser.get(env.origin + "/api/echo", headers: env.csrf)
            #expect(again.status == 200, "refresh succeeds once the IdP is back")
        }
    }

    @Test func cookieModeRefreshReissuesTheCookie() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await withProxy(clock: clock, cookieMode: true) { env, browser, _ in
            try await env.login(browser)
            let before = browser.cookies(host: "localhost")["__Host-bff-session"]
            clock.advance(by: 241)
            let refreshed = try await browser.get(env.origin + "/api/echo", headers: env.csrf)
            #expect(refreshed.status == 200)
            #expect(
                refreshed.headerValues("set-cookie").contains {
                    $0.hasPrefix("__Host-bff-session=") && !$0.contains("Max-Age=0")
                })
            #expect(browser.cookies(host: "localhost")["__Host-bff-session"] != before)
            let token = try echoed(refreshed).values("authorization")
            let again = try echoed(try await browser.get(env.origin + "/api/echo", headers: env.csrf)).values(
                "authorization")
            #expect(again == token, "the re-issued cookie carries the new token")
            #expect(await env.idp.statistics().refreshRequests == 1)
        }
    }

    @Test func headerValuesWithCRLFAreRejected() async throws {
        try await withProxy { env, _, _ in
            let port = Int(env.origin.split(separator: ":").last ?? "0") ?? 0
            for injected in ["a\rb", "a\nX-Injected: 1", "a\u{0}b"] {
                let raw = "GET /api/public HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nX-Evil: \(injected)\r\n\r\n"
                let answer = try await RawHTTP.exchange(port: port, request: raw)
                #expect(answer.isEmpty || answer.hasPrefix("HTTP/1.1 400"), "answered: \(answer.prefix(40))")
                #expect(!answer.hasPrefix("HTTP/1.1 200"))
            }
        }
    }
}
