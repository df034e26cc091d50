import BFFCore
import BFFHummingbird
import Foundation
import Testing

@testable import BFFGateway

/// One table of requests, decided by the planner directly and sent over sockets through both
/// adapters — the gateway's channel handler and the Hummingbird middleware — with identical
/// results: the same status, the same problem type, and (for forwarded calls) the same upstream
/// reached, each served by the adapter the test asked for.
@Suite("API pipeline parity: planner, channel handler and middleware agree")
struct PipelineParityTests {
    let harness = RemoteAPITests()

    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let method: String
        let target: String
        let headers: [(String, String)]
        /// Send the session cookie.
        let signedIn: Bool
        let body: String
        let status: Int
        /// The problem type's last part for refusals, nil when the upstream answers.
        let problem: String?
        var description: String { name }
    }

    static let csrf = [("X-CSRF", "1")]
    static let table: [Case] = [
        Case(
            name: "user route, signed in", method: "GET", target: "/api/echo/a?m=p1", headers: csrf, signedIn: true,
            body: "", status: 200, problem: nil),
        Case(
            name: "user route, anonymous", method: "GET", target: "/api/echo/a?m=p2", headers: csrf, signedIn: false,
            body: "", status: 401, problem: "unauthenticated"),
        Case(
            name: "no anti-forgery header", method: "GET", target: "/api/echo/a?m=p3", headers: [], signedIn: true,
            body: "", status: 401, problem: "antiforgery"),
        Case(
            name: "two anti-forgery headers", method: "GET", target: "/api/public/a?m=p4",
            headers: csrf + csrf, signedIn: false, body: "", status: 401, problem: "antiforgery"),
        Case(
            name: "cross-site Sec-Fetch-Site", method: "GET", target: "/api/public/a?m=p5",
            headers: csrf + [("Sec-Fetch-Site", "cross-site")], signedIn: false, body: "", status: 401,
            problem: "antiforgery"),
        Case(
            name: "foreign Origin", method: "POST", target: "/api/public/a?m=p6",
            headers: csrf + [("Origin", "https://evil.example")], signedIn: false, body: "", status: 401,
            problem: "antiforgery"),
        Case(
            name: "encoded dot segment", method: "GET", target: "/api/echo/%2e%2e/a?m=p7", headers: csrf,
            signedIn: true, body: "", status: 400, problem: "invalid-path"),
        Case(
            name: "double-encoded dot", method: "GET", target: "/api/echo/%252e%252e/a?m=p8", headers: csrf,
            signedIn: true, body: "", status: 400, problem: "invalid-path"),
        Case(
            name: "path parameter", method: "GET", target: "/api/echo/x;a=b?m=p9", headers: csrf, signedIn: true,
            body: "", status: 400, problem: "invalid-path"),
        Case(
            name: "unknown transfer coding", method: "POST", target: "/api/public/a?m=p10",
            headers: csrf + [("Transfer-Encoding", "gzip, chunked")], signedIn: false, body: "0\r\n\r\n",
            status: 501, problem: "unsupported-transfer-coding"),
        Case(
            name: "none route, anonymous", method: "GET", target: "/api/public/a?m=p11", headers: csrf,
            signedIn: false, body: "", status: 200, problem: nil),
        Case(
            name: "user-or-none, anonymous", method: "GET", target: "/api/maybe/a?m=p12", headers: csrf,
            signedIn: false, body: "", status: 200, problem: nil),
        Case(
            name: "client route", method: "GET", target: "/api/service/a?m=p13", headers: csrf, signedIn: false,
            body: "", status: 200, problem: nil),
        Case(
            name: "POST with a body", method: "POST", target: "/api/echo/a?m=p14",
            headers: csrf + [("Content-Type", "application/json"), ("Content-Length", "13")], signedIn: true,
            body: #"{"hello":"x"}"#, status: 200, problem: nil),
        Case(
            name: "chunked upload", method: "PUT", target: "/api/echo/a?m=p15",
            headers: csrf + [("Transfer-Encoding", "chunked")], signedIn: true, body: "3\r\nabc\r\n0\r\n\r\n",
            status: 200, problem: nil),
        Case(
            name: "HEAD", method: "HEAD", target: "/api/public/a?m=p16", headers: csrf, signedIn: false, body: "",
            status: 200, problem: nil),
        Case(
            name: "a resource the IdP refuses", method: "GET", target: "/api/unknown-resource/a?m=p17",
            headers: csrf, signedIn: true, body: "", status: 403, problem: "forbidden"),
        Case(
            name: "an upstream that is down", method: "GET", target: "/api/dead/a?m=p18", headers: csrf,
            signedIn: false, body: "", status: 502, problem: "upstream-unavailable"),
        Case(
            name: "upstream statuses pass through", method: "DELETE", target: "/api/bulk/status/404?m=p19",
            headers: csrf, signedIn: false, body: "", status: 404, problem: nil),
    ]

    func rawRequest(_ test: Case, cookie: String) -> String {
        var text = "\(test.method) \(test.target) HTTP/1.1\r\nHost: localhost\r\n"
        for (name, value) in test.headers { text += "\(name): \(value)\r\n" }
        if test.signedIn { text += "Cookie: \(cookie)\r\n" }
        return text + "\r\n" + test.body
    }

    /// The status and problem type of a raw response.
    func outcome(_ response: String) -> (Int?, String?) {
        let status = Int(response.dropFirst(9).prefix(3))
        let problem = response.range(of: "urn:bff:problem:").map { range in
            String(response[range.upperBound...].prefix { $0 != "\"" })
        }
        return (status, problem)
    }

    /// The channel handler alone, behind the WebSocket upgrade handler (a gateway with a
    /// WebSocket route), and the router's middleware.
    enum Adapter: String, CaseIterable, Sendable { case channelHandler, behindUpgradeHandler, middleware }

    @Test(arguments: Adapter.allCases)
    func everyAdapterDecidesTheTableAlike(adapter: Adapter) async throws {
        let calls = APICallLog()
        let hardening = RequestHardeningTests()
        let channelHandler = adapter != .middleware
        try await harness.withProxy(
            fastPath: channelHandler, apiCalls: calls,
            configure: { settings in
                guard adapter == .behindUpgradeHandler else { return }
                settings.apis.append(
                    APIRouteConfiguration(
                        path: "/api/live", upstream: "http://127.0.0.1:1/socket", token: .user, websocket: true))
            }
        ) { env, browser, _ in
            try await env.login(browser)
            let cookie = try hardening.sessionCookie(browser)
            for test in Self.table {
                // The planner directly: refusals known without I/O are the same problem.
                var fields = test.headers.map { APICallRequest.Field(name: $0.0, value: $0.1) }
                if test.signedIn { fields.append(.init(name: "Cookie", value: cookie)) }
                var decision = env.gateway.bff.planner.plan(
                    APICallRequest(method: test.method, target: test.target, fields: fields, remoteAddress: "127.0.0.1")
                )
                if case .suspend(let work) = decision { decision = await work.resume() }
                switch decision {
                case .refuse(let refusal):
                    #expect(refusal.problem.type == "urn:bff:problem:" + (test.problem ?? "none"), "\(test)")
                    #expect(refusal.problem.status == test.status, "\(test)")
                case .forward(let plan):
                    // Forwarded by the planner; a problem can then only come from the upstream leg.
                    #expect(test.problem == nil || test.status >= 502, "\(test): planned \(plan.url)")
                case .pass, .suspend:
                    Issue.record("\(test): the planner did not decide")
                }

                let response = try await hardening.raw(env, rawRequest(test, cookie: cookie))
                let (status, problem) = outcome(response)
                #expect(status == test.status, "\(test): \(response.prefix(300))")
                #expect(problem == test.problem, "\(test): \(response.prefix(300))")
                let marker = String(test.target.split(separator: "?").last ?? "")
                let events = calls.events(for: marker)
                #expect(events.count == 1, "\(test): one event per call, got \(events.count)")
                #expect(events.allSatisfy { $0.pipeline == (channelHandler ? .eventLoop : .router) }, "\(test)")
                #expect(events.first?.status == test.status, "\(test)")
                #expect((events.first?.upstreamStatus != nil) == (test.problem == nil), "\(test): upstream reached?")
            }
        }
    }
}
