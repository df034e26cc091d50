import BFFCore
import BFFOIDC
import BFFTesting
import Foundation
import Testing

/// Hostile requests and IdP failures, each on both pipelines where a pipeline could decide
/// differently (the event-loop path is on with warm pools, or off).
@Suite("Request handling: escapes, forwarding headers, codings, refresh failures, sliding")
struct RequestHardeningTests {
    let harness = RemoteAPITests()

    func port(_ env: TestEnvironment) throws -> Int {
        try #require(env.origin.split(separator: ":").last.flatMap { Int($0) })
    }

    func sessionCookie(_ browser: TestBrowser) throws -> String {
        let value = try #require(browser.cookies(host: "localhost")["__Host-bff-session"])
        return "__Host-bff-session=" + value
    }

    /// Sends `request` on a raw connection and returns the whole response text (small responses).
    func raw(_ env: TestEnvironment, _ request: String) async throws -> String {
        let client = try await RawConnection.open(port: try port(env))
        try await client.send(request)
        _ = try await eventually(attempts: 100, every: .milliseconds(20), until: { $0 }) {
            let head = client.received.head
            guard let end = head.range(of: "\r\n\r\n") else { return false }
            let length =
                head.lowercased().components(separatedBy: "content-length: ").dropFirst().first
                .flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
            return head[end.upperBound...].utf8.count >= length
        }
        await client.reset()
        return client.received.head
    }

    static let escapes = [
        "/api/echo/x/..;/admin", "/api/echo/x/%252e%252e/admin", "/api/echo/x/%252E%252E/admin", "/api/echo/a%252fb",
        "/api/echo/a%255cb", "/api/echo/a%2500b", "/api/echo/x;jsessionid=1", "/api/echo/x/%25%32%65%25%32%65/admin",
    ]

    @Test(arguments: [true, false])
    func pathEscapesAreRefusedBeforeMatchingOnBothPipelines(fastPath: Bool) async throws {
        let calls = APICallLog()
        try await harness.withProxy(fastPath: fastPath, apiCalls: calls) { env, browser, _ in
            try await env.login(browser)
            try await harness.warmUpstreamPools(env, browser, path: "/api/echo")
            let cookie = try sessionCookie(browser)
            // The same request with a clean path is served (on the event loop when it is on).
            let control = try await raw(
                env, "GET /api/echo/ok?m=control HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nCookie: \(cookie)\r\n\r\n")
            #expect(control.hasPrefix("HTTP/1.1 200"), "\(control)")
            #expect(calls.pipeline(for: "m=control") == (fastPath ? .eventLoop : .router))
            for (index, path) in Self.escapes.enumerated() {
                let response = try await raw(
                    env,
                    "GET \(path)?m=escape-\(index) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nCookie: \(cookie)\r\n\r\n"
                )
                #expect(response.hasPrefix("HTTP/1.1 400"), "\(path): \(response)")
                #expect(response.contains("urn:bff:problem:invalid-path"), "\(path)")
                #expect(calls.pipelines(for: "m=escape-\(index)").isEmpty, "\(path) never reached an upstream")
            }
        }
    }

    @Test(arguments: [true, false])
    func untrustedRoutingHeadersNeverReachTheUpstream(fastPath: Bool) async throws {
        let calls = APICallLog()
        try await harness.withProxy(fastPath: fastPath, apiCalls: calls) { env, browser, _ in
            try await env.login(browser)
            try await harness.warmUpstreamPools(env, browser, path: "/api/echo")
            let hostile = [
                ("X-Forwarded-Prefix", "/admin"), ("X-Forwarded-Port", "8443"), ("X-Forwarded-Server", "evil"),
                ("X-Forwarded-Ssl", "on"), ("X-Real-IP", "10.6.6.6"), ("X-Original-URL", "/admin/delete"),
                ("X-Rewrite-URL", "/admin/delete"), ("Forwarded", "for=6.6.6.6;host=evil.example"),
            ]
            let page = try await browser.get(env.origin + "/api/echo/x?m=headers", headers: env.csrf + hostile)
            let seen = try harness.echoed(page)
            for (name, _) in hostile {
                #expect(seen.values(name.lowercased()).isEmpty, "\(name) reached the upstream")
            }
            #expect(seen.values("x-forwarded-for") == ["127.0.0.1"], "the gateway's own value only")
            #expect(calls.pipeline(for: "m=headers") == (fastPath ? .eventLoop : .router))
        }
    }

    /// 501 from the gateway; `chunked, identity` (chunked not last) is already refused 400 by the
    /// HTTP parser.
    @Test(arguments: [("xchunked", 501), ("chunked, identity", 400), ("gzip, chunked", 501), ("identity", 501)])
    func unknownTransferCodingsAreRefusedWithoutContactingTheUpstream(coding: String, expected: Int) async throws {
        let calls = APICallLog()
        try await harness.withProxy(apiCalls: calls) { env, _, _ in
            let response = try await raw(
                env,
                "POST /api/misc/echo/te?m=coding HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n"
                    + "Transfer-Encoding: \(coding)\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            let status = Int(response.dropFirst(9).prefix(3))
            #expect(status == expected, "\(response)")
            if expected == 501 { #expect(response.contains("urn:bff:problem:unsupported-transfer-coding")) }
            #expect(calls.pipelines(for: "m=coding").isEmpty, "the upstream was not contacted")
        }
    }

    /// Only `invalid_grant` says the user's grant is gone. A rotated client secret, a WAF's HTML
    /// page, a proxy's 404, a 5xx: the session is kept, the call gets 503 `idp-unavailable`, and
    /// once the IdP answers properly again the same session works.
    @Test(arguments: [
        (401, #"{"error":"invalid_client"}"#, "application/json"),
        (400, #"{"error":"unauthorized_client"}"#, "application/json"),
        (400, #"{"error":"invalid_request"}"#, "application/json"),
        (403, "<html>Request blocked by WAF</html>", "text/html"),
        (404, "Not Found", "text/plain"),
        (500, "oops", "text/plain"),
        (502, "<html>Bad Gateway</html>", "text/html"),
    ])
    func refreshFailuresOtherThanInvalidGrantKeepTheSession(status: Int, body: String, type: String) async throws {
        try await harness.withProxy(accessTokenLifetime: 30, refreshBefore: .seconds(60)) { env, browser, _ in
            try await env.login(browser)
            env.idpLink.answerRefreshes(
                with: OIDCHTTPResponse(status: status, headers: [("Content-Type", type)], body: Array(body.utf8)))
            let failed = try await browser.get(env.origin + "/api/echo/x", headers: env.csrf)
            #expect(failed.status == 503, "\(failed.body)")
            #expect(failed.body.contains("urn:bff:problem:idp-unavailable"))
            #expect(failed.headerValues("set-cookie").isEmpty, "no cookie cleared")
            #expect(try await env.user(browser).status == 200, "session kept")
            env.idpLink.answerRefreshes(with: nil)
            #expect(try await browser.get(env.origin + "/api/echo/x", headers: env.csrf).status == 200)
        }
    }

    @Test func invalidGrantEndsTheSession() async throws {
        try await harness.withProxy(accessTokenLifetime: 30, refreshBefore: .seconds(60)) { env, browser, _ in
            try await env.login(browser)
            env.idpLink.answerRefreshes(
                with: OIDCHTTPResponse(
                    status: 400, headers: [("Content-Type", "application/json")],
                    body: Array(#"{"error":"invalid_grant"}"#.utf8)))
            let ended = try await browser.get(env.origin + "/api/echo/x", headers: env.csrf)
            #expect(ended.status == 401)
            #expect(ended.body.contains("urn:bff:problem:session-expired"))
            #expect(try await env.user(browser).status == 401)
        }
    }

    /// A user who works only through API calls stays signed in: every call renews the idle
    /// timeout (throttled to at most half of it), whichever pipeline serves it.
    @Test(arguments: [(true, false), (false, false), (true, true)])
    func apiCallsSlideTheIdleTimeout(fastPath: Bool, cookieMode: Bool) async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        let calls = APICallLog()
        try await harness.withProxy(
            clock: clock, cookieMode: cookieMode, fastPath: fastPath, apiCalls: calls,
            configure: { $0.session.idleTimeout = .seconds(6) }
        ) { env, browser, _ in
            try await env.login(browser)
            try await harness.warmUpstreamPools(env, browser, path: "/api/public")
            for step in 0..<5 {
                clock.advance(by: 4)  // more than the 6 s idle timeout after two steps without a renewal
                let page = try await browser.get(env.origin + "/api/echo/x?m=slide-\(step)", headers: env.csrf)
                #expect(page.status == 200, "step \(step): \(page.body)")
            }
            // Between renewals (less than half the idle timeout since the last) the event loop serves.
            clock.advance(by: 1)
            #expect(try await browser.get(env.origin + "/api/echo/x?m=between", headers: env.csrf).status == 200)
            if fastPath { #expect(calls.pipeline(for: "m=between") == .eventLoop) }
            clock.advance(by: 7)
            #expect(try await env.user(browser).status == 401, "idle for longer than the timeout: ended")
        }
    }

    @Test func userEndpointSlidesAShortIdleTimeout() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await harness.withProxy(clock: clock, configure: { $0.session.idleTimeout = .seconds(6) }) {
            env, browser, _ in
            try await env.login(browser)
            for step in 0..<4 {
                clock.advance(by: 4)
                #expect(try await env.user(browser).status == 200, "step \(step)")
            }
        }
    }
}
