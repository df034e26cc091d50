import BFFCore
import BFFTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization
import Testing

@testable import BFFGateway

/// WebSocket routes (SPEC §8): handshakes need the public `Origin` and, for `user` routes, a
/// session; accepted ones are bridged to the upstream with the user's token.
@Suite("WebSocket routes")
struct WebSocketTests {
    /// An upstream that first reports what its handshake carried, then echoes every message.
    static func upstream(port: Int) -> some ApplicationProtocol {
        let router = Router()
        return Application(
            router: router,
            server: .http1WebSocketUpgrade { head, _, _ in
                let bearer = head.headerFields[.authorization]?.hasPrefix("Bearer ") ?? false
                let cookie = head.headerFields[.cookie] != nil
                let path = head.path ?? ""
                return .upgrade([:]) { inbound, outbound, _ in
                    try await outbound.write(.text("bearer=\(bearer) cookie=\(cookie) path=\(path)"))
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        switch message {
                        case .text(let text): try await outbound.write(.text("echo:" + text))
                        case .binary(let buffer): try await outbound.write(.binary(buffer))
                        }
                    }
                }
            },
            configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: TestEnvironment.quietLogger)
    }

    func withWebSocketRoute(_ body: @Sendable (TestEnvironment, TestBrowser, String) async throws -> Void)
        async throws
    {
        let port = try await TestServers.freePort()
        try await TestEnvironment.run(
            extraServices: [Self.upstream(port: port)], extraPorts: [port],
            configure: { settings in
                settings.apis.append(
                    APIRouteConfiguration(
                        path: "/api/live", upstream: "http://127.0.0.1:\(port)/socket", token: .user, websocket: true))
            }
        ) { env, browser in
            try await body(env, browser, env.origin.replacingOccurrences(of: "http://", with: "ws://") + "/api/live")
        }
    }

    static func cookieHeader(_ browser: TestBrowser) -> String {
        browser.cookies(host: "localhost").map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
    }

    static func port(_ origin: String) -> Int { Int(origin.split(separator: ":").last ?? "") ?? 0 }

    @Test func sessionAndOriginOpenABridgeWithTheUsersToken() async throws {
        try await withWebSocketRoute { env, browser, _ in
            try await env.login(browser)
            let (status, received) = try await RawWebSocket.session(
                port: Self.port(env.origin), path: "/api/live/room/7?x=1",
                headers: [("Origin", env.origin), ("Cookie", Self.cookieHeader(browser))], messages: ["hi", "there"])
            #expect(status == 101)
            #expect(received == ["bearer=true cookie=false path=/socket/room/7?x=1", "echo:hi", "echo:there"])
            // The upgrade is counted by its configured route.
            let scrape = try await MetricsTests().scrape(env, browser)
            #expect(scrape[#"bff_http_requests_total{method="GET",route="/api/live",status="101"}"#] == 1)
        }
    }

    @Test func handshakesWithoutTheRightOriginOrSessionAreRefused() async throws {
        try await withWebSocketRoute { env, browser, _ in
            try await env.login(browser)
            let cookie = Self.cookieHeader(browser)
            let port = Self.port(env.origin)
            for (headers, expected) in [
                ([("Cookie", cookie)], 403),  // no Origin
                ([("Origin", "https://evil.example"), ("Cookie", cookie)], 403),  // cross-site page
                ([("Origin", "ws://localhost"), ("Cookie", cookie)], 403),  // not a browser origin
                (
                    [
                        ("Origin", env.origin.replacingOccurrences(of: "localhost", with: "127.0.0.1")),
                        ("Cookie", cookie),
                    ], 403
                ),
                ([("Origin", env.origin), ("Origin", env.origin), ("Cookie", cookie)], 403),  // two Origin fields
                ([("Origin", env.origin)], 401),  // no session
                ([("Origin", env.origin), ("Cookie", "__Host-bff-session=forged")], 401),
            ] {
                // The handshake is declined (the upgrade layer answers a bare 400 and closes)...
                let (status, received) = try await RawWebSocket.session(
                    port: port, path: "/api/live", headers: headers, messages: ["x"])
                #expect(status == 400, "\(headers.map(\.0))")
                #expect(received.isEmpty)
                // ...and the same request as plain HTTP says why.
                let page = try await browser.request(
                    "GET", env.origin + "/api/live", headers: headers, sendCookies: false)
                #expect(page.status == expected, "\(headers.map(\.0))")
            }
            // Each declined handshake is counted (and access-logged) as the 400 it got; the
            // plain requests as their problems.
            let scrape = try await MetricsTests().scrape(env, browser)
            #expect(scrape[#"bff_http_requests_total{method="GET",route="/api/live",status="400"}"#] == 7)
            #expect(scrape[#"bff_http_requests_total{method="GET",route="/api/live",status="403"}"#] == 5)
            #expect(scrape[#"bff_http_requests_total{method="GET",route="/api/live",status="401"}"#] == 2)
            // Without the upgrade the route answers 426.
            let plain = try await browser.get(env.origin + "/api/live", headers: [("Origin", env.origin)])
            #expect(plain.status == 426)
            #expect(plain.body.contains("urn:bff:problem:websocket-upgrade-required"))
            // After logout the old cookie no longer opens a bridge.
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect((300..<400).contains(logout.status))
            let (after, _) = try await RawWebSocket.session(
                port: port, path: "/api/live", headers: [("Origin", env.origin), ("Cookie", cookie)], messages: [])
            #expect(after == 400)
        }
    }
}

extension WebSocketTests {
    enum Ending: String, CaseIterable, Sendable { case logout, backChannel, sessionsRevoke, expiry }

    /// Ending the session a bridge was opened on closes the bridge with 1008 within 2 s, whichever
    /// way the session ended (SPEC §11.1).
    @Test(arguments: Ending.allCases)
    func endingTheSessionClosesItsWebSockets(_ ending: Ending) async throws {
        let port = try await TestServers.freePort()
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await TestEnvironment.run(
            extraServices: [Self.upstream(port: port)], extraPorts: [port], gatewayTime: clock,
            configure: { settings in
                settings.apis.append(
                    APIRouteConfiguration(
                        path: "/api/live", upstream: "http://127.0.0.1:\(port)/socket", token: .user, websocket: true))
            }
        ) { env, browser in
            try await env.login(browser)
            let logoutURL = try await env.logoutURL(browser)
            let sid = try #require(TestEnvironment.query(logoutURL)["sid"])
            let started = Mutex<ContinuousClock.Instant?>(nil)
            let (status, received) = try await RawWebSocket.session(
                port: Self.port(env.origin), path: "/api/live",
                headers: [("Origin", env.origin), ("Cookie", Self.cookieHeader(browser))], messages: ["hi"],
                then: {
                    started.withLock { $0 = .now }
                    switch ending {
                    case .logout:
                        #expect(try await browser.get(logoutURL).status == 302)
                    case .backChannel:
                        let claims: [String: JSONValue] = [
                            "iss": .string(env.issuer), "aud": "bff-demo", "iat": .int(clock.now),
                            "jti": .string(UUID().uuidString), "sid": .string(sid),
                            "events": .object(["http://schemas.openid.net/event/backchannel-logout": .object([:])]),
                        ]
                        let page = try await browser.request(
                            "POST", env.origin + "/bff/backchannel",
                            headers: [("content-type", "application/x-www-form-urlencoded")],
                            body: Array(
                                FormEncoding.encode([("logout_token", try env.idp.keys.sign(claims: claims))]).utf8),
                            sendCookies: false)
                        #expect(page.status == 200)
                    case .sessionsRevoke:
                        // Another process's revocation: straight in the store, as `bff sessions revoke` does.
                        let store = try #require(env.gateway.store)
                        let removed = try await store.removeAll(
                            issuer: env.issuer, idpSessionID: nil, subject: "alice-7f3b")
                        #expect(removed.count == 1)
                    case .expiry:
                        clock.advance(by: 9 * 3600)  // past the 8 h idle timeout
                    }
                })
            #expect(status == 101)
            #expect(received.first?.hasPrefix("bearer=true") == true)
            #expect(received.last == "close:1008", "\(ending): \(received)")
            let elapsed = ContinuousClock.now - (started.withLock { $0 } ?? .now)
            #expect(elapsed < .seconds(2), "\(ending): closed after \(elapsed)")
        }
    }

    @Test func deadUpstreamClosesTheBrowserSidePromptly() async throws {
        try await TestEnvironment.run(configure: { settings in
            settings.apis.append(
                APIRouteConfiguration(
                    path: "/api/gone", upstream: "http://127.0.0.1:1/x", token: .user, websocket: true))
        }) { env, browser in
            try await env.login(browser)
            let started = ContinuousClock.now
            let (status, received) = try await RawWebSocket.session(
                port: Self.port(env.origin), path: "/api/gone",
                headers: [("Origin", env.origin), ("Cookie", Self.cookieHeader(browser))], messages: [])
            #expect(status == 101)
            #expect(received == ["close:1011"], "closed as an unexpected server condition, without data")
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }
}

/// Messages collected by a client handler.
final class Received: Sendable {
    private let state = Mutex<[String]>([])
    func append(_ value: String) { state.withLock { $0.append(value) } }
    var all: [String] { state.withLock { $0 } }
}
