import BFFCore
import BFFSessionStoreSQLite
import BFFTesting
import Foundation
import Synchronization
import Testing

@testable import BFFGateway

/// Cookie mode keeps no sessions on the server, so its logouts are revocation records; they must
/// survive a restart (a deploy), or a cookie captured before a logout works again afterwards.
@Suite("Cookie mode: revocation records survive a restart")
struct CookieModeRevocationTests {
    static let key = KeyRing.Key(id: "k1", secret: Array(repeating: 7, count: 32))

    struct Captured: Sendable {
        var loggedOut: [String: String] = [:]
        var backChannelled: [String: String] = [:]
        var kept: [String: String] = [:]
    }

    func sessionCookies(_ browser: TestBrowser) -> [String: String] {
        browser.cookies(host: "localhost").filter { $0.key.hasPrefix("__Host-bff-session") }
    }

    func browser(with cookies: [String: String]) -> TestBrowser {
        let browser = TestBrowser()
        for (name, value) in cookies { browser.setCookie(host: "localhost", name: name, value: value) }
        return browser
    }

    @Test func loggedOutAndBackChannelEndedCookiesStayAnonymousAfterARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-rev-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The feed comes from the gateway's own store opening, as `bff serve` gets it: in cookie
        // mode without PostgreSQL, a file in the data directory.
        var configuration = GatewayConfiguration(bff: BFFConfiguration(session: SessionConfiguration(store: .cookie)))
        configuration.dataDirectory = directory
        func openFeed() async throws -> SQLiteSessionStore {
            let store = try await Gateway.openStore(for: configuration, logger: TestEnvironment.quietLogger)
            return try #require(store as? SQLiteSessionStore, "cookie mode opens a durable revocation file")
        }
        let keyRing = try KeyRing(keys: [Self.key])
        let captured = Captured.Box()

        // First life: three sessions; one logs out, one is ended by back-channel logout.
        let first = try await openFeed()
        try await TestEnvironment.run(
            keyRing: keyRing, revocationFeed: first, configure: { $0.session.store = .cookie }
        ) { env, _ in
            let a = TestBrowser()
            let b = TestBrowser()
            let c = TestBrowser()
            do {
                try await env.login(a)
                let loggedOut = sessionCookies(a)
                #expect(try await a.get(try await env.logoutURL(a)).status == 302)
                try await env.login(b, user: "bob")
                let backChannelled = sessionCookies(b)
                let sid = try #require(TestEnvironment.query(try await env.logoutURL(b))["sid"])
                let claims: [String: JSONValue] = [
                    "iss": .string(env.issuer), "aud": "bff-demo", "iat": .int(SystemTimeSource().now),
                    "jti": .string(UUID().uuidString), "sid": .string(sid),
                    "events": .object(["http://schemas.openid.net/event/backchannel-logout": .object([:])]),
                ]
                let token = try env.idp.keys.sign(claims: claims)
                let posted = try await b.request(
                    "POST", env.origin + "/bff/backchannel",
                    headers: [("content-type", "application/x-www-form-urlencoded")],
                    body: Array(FormEncoding.encode([("logout_token", token)]).utf8), sendCookies: false)
                #expect(posted.status == 200)
                try await env.login(c)
                captured.set(Captured(loggedOut: loggedOut, backChannelled: backChannelled, kept: sessionCookies(c)))
                for (name, cookies) in [("logged out", loggedOut), ("back-channel", backChannelled)] {
                    let replay = browser(with: cookies)
                    #expect(try await env.user(replay).status == 401, "\(name) before the restart")
                    try await replay.shutdown()
                }
            } catch {
                for browser in [a, b, c] { try? await browser.shutdown() }
                throw error
            }
            for browser in [a, b, c] { try await browser.shutdown() }
        }
        try await first.close()

        // Second life: the same keys and the same file; nothing in memory.
        let second = try await openFeed()
        #expect(FileManager.default.fileExists(atPath: directory + "/revocations.sqlite"))
        try await TestEnvironment.run(
            keyRing: keyRing, revocationFeed: second, configure: { $0.session.store = .cookie }
        ) { env, _ in
            let cookies = captured.get()
            #expect(!cookies.loggedOut.isEmpty && !cookies.backChannelled.isEmpty && !cookies.kept.isEmpty)
            for (name, jar, expected) in [
                ("logged out", cookies.loggedOut, 401), ("back-channel", cookies.backChannelled, 401),
                ("never ended", cookies.kept, 200),
            ] {
                let replay = browser(with: jar)
                let status = try await env.user(replay).status
                try await replay.shutdown()
                #expect(status == expected, "\(name) after the restart")
            }
        }
        try await second.close()
    }
}

extension CookieModeRevocationTests.Captured {
    /// Carries the cookies from the first gateway's life to the second's.
    final class Box: Sendable {
        private let value = Mutex(CookieModeRevocationTests.Captured())
        func set(_ captured: CookieModeRevocationTests.Captured) { value.withLock { $0 = captured } }
        func get() -> CookieModeRevocationTests.Captured { value.withLock { $0 } }
    }
}
