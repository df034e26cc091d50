import BFFCore
import BFFTesting
import Foundation
import NIOCore
import Synchronization
import Testing

/// A gateway with a WebSocket route serves its API calls on the same event-loop path as one
/// without: the upgrade handler decides a connection's first request, and the API handler behind
/// it takes every API call of a connection that stays HTTP.
@Suite("API calls on a gateway with WebSocket routes")
struct WebSocketGatewayAPITests {
    let harness = RemoteAPITests()
    let faults = FaultTests()

    func withWebSocketGateway(
        calls: APICallLog, _ body: @Sendable @escaping (TestEnvironment, TestBrowser, Int) async throws -> Void
    ) async throws {
        let socketPort = try await TestServers.freePort()
        try await harness.withProxy(
            apiCalls: calls, extraServices: [WebSocketTests.upstream(port: socketPort)], extraPorts: [socketPort],
            configure: { settings in
                settings.apis.append(
                    APIRouteConfiguration(
                        path: "/api/live", upstream: "http://127.0.0.1:\(socketPort)/socket", token: .user,
                        websocket: true))
            }
        ) { env, browser, _ in
            try await body(env, browser, try faults.port(env))
        }
    }

    @Test func everyAPICallTakesTheEventLoopPathAndUpgradesStillWork() async throws {
        let calls = APICallLog()
        try await withWebSocketGateway(calls: calls) { env, browser, port in
            try await env.login(browser)
            // The first request of a connection, and later ones on it.
            for index in 0..<3 {
                let page = try await browser.get(env.origin + "/api/echo/a?m=ws-get-\(index)", headers: env.csrf)
                #expect(page.status == 200)
                #expect(calls.pipeline(for: "m=ws-get-\(index)") == .eventLoop)
            }
            let post = try await browser.request(
                "POST", env.origin + "/api/echo/a?m=ws-post", headers: env.csrf + [("Content-Type", "text/plain")],
                body: Array("hello".utf8))
            #expect(post.status == 200)
            #expect(try harness.echoed(post).bodyLength == 5)
            #expect(calls.pipeline(for: "m=ws-post") == .eventLoop)
            // A refusal known at once is the event-loop handler's too.
            let refused = try await browser.get(env.origin + "/api/echo/a?m=ws-refused")
            #expect(refused.status == 401)
            #expect(calls.events(for: "m=ws-refused").map(\.pipeline) == [.eventLoop])
            // The WebSocket route still upgrades and bridges, with the user's token.
            let (status, received) = try await RawWebSocket.session(
                port: port, path: "/api/live/room",
                headers: [
                    ("Origin", env.origin), ("Cookie", WebSocketTests.cookieHeader(browser)),
                ], messages: ["hi"])
            #expect(status == 101)
            #expect(received == ["bearer=true cookie=false path=/socket/room", "echo:hi"])
            // Without the upgrade, the route answers 426 from the event-loop handler.
            let plain = try await browser.get(env.origin + "/api/live?m=ws-plain", headers: [("Origin", env.origin)])
            #expect(plain.status == 426)
            #expect(calls.events(for: "m=ws-plain").map(\.pipeline) == [.eventLoop])
        }
    }

    /// The mix that lost requests when the API handler sat in front of the upgrade handler:
    /// pipelined API calls and router requests on many connections at once, each answered, in
    /// order, and nothing left leased.
    @Test func pipelinedAPIAndRouterRequestsOnManyConnectionsAreAllAnsweredInOrder() async throws {
        let calls = APICallLog()
        try await withWebSocketGateway(calls: calls) { env, _, port in
            let requests = [
                "GET /api/bulk/status/201?m=mix HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "GET /bff/user HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "POST /api/misc/echo/p?m=mix HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nContent-Length: 5\r\n\r\nhello",
                "GET /bff/user HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "GET /api/bulk/status/202?m=mix HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n",
            ].joined()
            let wrong = Mutex<[String]>([])
            try await faults.inBatches(200, width: 50) { index in
                let received = try await RawHTTP.exchangeUntilClosed(port: port, request: requests)
                let statuses = received.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
                if statuses != ["201", "401", "200", "401", "202"] {
                    wrong.withLock { $0.append("\(index): \(statuses)") }
                }
            }
            #expect(wrong.withLock { $0 }.isEmpty, "\(wrong.withLock { $0.prefix(5) })")
            #expect(calls.pipelines(for: "m=mix").allSatisfy { $0 == .eventLoop })
            #expect(calls.pipelines(for: "m=mix").count == 600)
            let leased = try await eventually(until: { $0 == 0 }) { env.forwarder.statistics.leased }
            #expect(leased == 0)
        }
    }

    /// Clients that reset during the upgrade decision or right after their first request leave
    /// nothing behind; the next calls and upgrades succeed.
    @Test func resetsAroundTheUpgradeDecisionLeaveNothingBehind() async throws {
        let calls = APICallLog()
        try await withWebSocketGateway(calls: calls) { env, browser, port in
            try await env.login(browser)
            let cookie = WebSocketTests.cookieHeader(browser)
            try await faults.inBatches(200, width: 50) { index in
                let client = try await RawConnection.open(port: port)
                switch index % 4 {
                case 0:  // an upgrade, cut before the handshake's end
                    try await client.send("GET /api/live HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
                case 1:  // a complete upgrade request, reset while it is decided
                    try await client.send(
                        "GET /api/live HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                            + "Origin: \(env.origin)\r\nCookie: \(cookie)\r\n\r\n")
                case 2:  // an API download, reset mid-body
                    try await client.send(
                        "GET /api/bulk/download/4194304?m=reset HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n")
                    _ = try await client.waitFor(bytes: 65536)
                default:  // an API upload, reset mid-upload
                    try await client.send(
                        "POST /api/bulk/echo/up?m=reset HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n"
                            + "Content-Length: 1048576\r\n\r\n")
                    try await client.send(bytes: 65536)
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...20)))
                await client.reset()
            }
            let leased = try await eventually(attempts: 250, every: .milliseconds(40), until: { $0 == 0 }) {
                env.forwarder.statistics.leased
            }
            #expect(leased == 0, "every upstream connection back to idle or closed")
            for index in 0..<20 {
                let page = try await browser.get(env.origin + "/api/echo/after?m=after-\(index)", headers: env.csrf)
                #expect(page.status == 200)
            }
            #expect(calls.pipelines(for: "m=after-").allSatisfy { $0 == .eventLoop })
            let (status, received) = try await RawWebSocket.session(
                port: port, path: "/api/live/after", headers: [("Origin", env.origin), ("Cookie", cookie)],
                messages: ["x"])
            #expect(status == 101)
            #expect(received.last == "echo:x")
        }
    }
}
