import BFFCore
import BFFTesting
import Foundation
import NIOCore
import NIOPosix
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
        calls: APICallLog, fastPath: Bool = true, serverIdleTimeout: Duration? = nil,
        _ body: @Sendable @escaping (TestEnvironment, TestBrowser, Int) async throws -> Void
    ) async throws {
        let socketPort = try await TestServers.freePort()
        try await harness.withProxy(
            serverIdleTimeout: serverIdleTimeout, fastPath: fastPath, apiCalls: calls,
            extraServices: [WebSocketTests.upstream(port: socketPort)], extraPorts: [socketPort],
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
                    let closed = !received.hasSuffix("s)")
                    wrong.withLock { $0.append("\(index): \(statuses)\(closed ? "" : " (not closed)")") }
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

    /// The review's crash: a handshake without `Connection: upgrade` (the HTTP parser reads on)
    /// or with a body, and a request pipelined behind it. The handshake is refused (400, closed),
    /// nothing reaches the WebSocket frame decoder, the gateway serves on. Both pipelines.
    @Test(arguments: [true, false])
    func malformedHandshakesAreRefusedAndThePipelinedRestNeverBecomesFrames(fastPath: Bool) async throws {
        let calls = APICallLog()
        try await withWebSocketGateway(calls: calls, fastPath: fastPath) { env, browser, port in
            try await env.login(browser)
            let cookie = WebSocketTests.cookieHeader(browser)
            let handshake =
                "Host: localhost\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                + "Sec-WebSocket-Version: 13\r\nOrigin: \(env.origin)\r\nCookie: \(cookie)\r\n"
            for (name, request) in [
                ("no Connection: upgrade", "GET /api/live/x HTTP/1.1\r\n" + handshake + "\r\n"),
                (
                    "a body",
                    "GET /api/live/x HTTP/1.1\r\n" + handshake
                        + "Connection: Upgrade\r\nContent-Length: 5\r\n\r\nhello"
                ),
                (
                    "a chunked body",
                    "GET /api/live/x HTTP/1.1\r\n" + handshake
                        + "Connection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                ),
            ] {
                let received = try await RawHTTP.exchangeUntilClosed(
                    port: port, request: request + "GET /bff/user HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\n\r\n")
                #expect(!received.hasPrefix("HTTP/1.1 101"), "\(name): not upgraded")
                #expect(received.hasPrefix("HTTP/1.1 400"), "\(name): \(received.prefix(80))")
                #expect(!received.contains("(no close within"), "\(name): the connection was closed")
            }
            // The gateway is alive and serves the next calls and upgrades.
            #expect(try await browser.get(env.origin + "/api/echo/after", headers: env.csrf).status == 200)
            let (status, received) = try await RawWebSocket.session(
                port: port, path: "/api/live/ok", headers: [("Origin", env.origin), ("Cookie", cookie)],
                messages: ["x"])
            #expect(status == 101)
            #expect(received.last == "echo:x")
        }
    }

    /// The review's never-answered connections: errors the HTTP decoder or the upgrade handler
    /// raise before any codec is behind the API handler (a head over the size limit, an upgrade
    /// without a key) are answered 400 and closed, not left open for ever.
    @Test func errorsBeforeTheFirstRequestAreAnsweredAndClosed() async throws {
        let calls = APICallLog()
        try await withWebSocketGateway(calls: calls, serverIdleTimeout: .seconds(30)) { env, browser, port in
            let oversized = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 100_000) + "\r\n\r\n"
            let noKey = "GET /bff/user HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            let badVersion =
                "GET /bff/user HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
            for (name, request) in [("oversized head", oversized), ("no key", noKey), ("version 8", badVersion)] {
                let started = ContinuousClock.now
                let received: String
                do {
                    received = try await RawHTTP.exchangeUntilClosed(port: port, request: request)
                } catch let error as IOError where error.errnoCode == ECONNRESET {
                    // Closed while the client was still sending (unread bytes make the close a reset).
                    #expect(name == "oversized head", "\(name): reset")
                    continue
                }
                #expect(!received.contains("(no close within"), "\(name): closed, not left open")
                #expect(received.hasPrefix("HTTP/1.1 4"), "\(name): answered: \(received.prefix(60))")
                #expect(ContinuousClock.now - started < .seconds(5), "\(name)")
            }
            #expect(try await browser.get(env.origin + "/api/public/after", headers: env.csrf).status == 200)
        }
    }

    /// NIO's parser reads nothing after a request that asks to switch protocols: a call with
    /// `Connection: upgrade` answered over HTTP closes its connection (as the router's 307 does)
    /// instead of leaving it silently dead.
    @Test func anUpgradeAskingCallAnsweredOverHTTPClosesItsConnection() async throws {
        let calls = APICallLog()
        try await withWebSocketGateway(calls: calls) { env, _, port in
            let received = try await RawHTTP.exchangeUntilClosed(
                port: port,
                request: "GET /api/public/a HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\n\r\n"
                    + "GET /api/public/b HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
            let statuses = received.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "200"], "\(received.prefix(300))")
            #expect(!received.contains("(no close within"), "closed after the second answer")
        }
    }

    /// The review's slowloris before the upgrade decision: a connection that sends nothing, or
    /// only part of a head, is closed at the idle timeout on both pipelines (Hummingbird's own
    /// idle handler is only installed after the decision).
    @Test(arguments: [true, false])
    func silentAndPartialConnectionsAreClosedAtTheIdleTimeout(fastPath: Bool) async throws {
        let calls = APICallLog()
        try await withWebSocketGateway(calls: calls, fastPath: fastPath, serverIdleTimeout: .seconds(2)) {
            env, browser, port in
            for partial in ["", "GET /api/live HTTP/1.1\r\nHost: x\r\nUpgrade: web"] {
                let started = ContinuousClock.now
                let received = try await RawHTTP.exchangeUntilClosed(port: port, request: partial, limit: .seconds(8))
                #expect(!received.contains("(no close within"), "'\(partial.prefix(10))' closed at the idle timeout")
                #expect(ContinuousClock.now - started >= .seconds(1.5), "not before it")
            }
            #expect(try await browser.get(env.origin + "/api/public/after", headers: env.csrf).status == 200)
        }
    }
}
