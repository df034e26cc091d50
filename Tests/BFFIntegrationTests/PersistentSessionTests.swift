import BFFCore
import BFFHummingbird
import BFFSessionStoreSQLite
import BFFTesting
import Foundation
import Testing

@testable import BFFGateway

@Suite("SQLite-backed gateway across restarts")
struct PersistentSessionTests {
    static let k1 = KeyRing.Key(id: "k1", secret: Array(repeating: 1, count: 32))
    static let k2 = KeyRing.Key(id: "k2", secret: Array(repeating: 2, count: 32))

    /// One gateway "process": a fresh store instance on `path`, the given keys.
    func withGateway(
        path: String, keys: [KeyRing.Key], _ body: @Sendable (TestEnvironment, TestBrowser) async throws -> Void
    ) async throws {
        let store = try await SQLiteSessionStore.open(path: path)
        do {
            let ring = try KeyRing(keys: keys)
            try await TestEnvironment.run(keyRing: ring, store: store, configure: { $0.session.store = .sqlite }, body)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    @Test func sessionsSurviveRestartAndKeyRotation() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bff-restart-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sessions.sqlite"
        let cookie = CookieBox()
        try await withGateway(path: path, keys: [Self.k1]) { env, browser in
            try await env.login(browser)
            let user = try await env.user(browser)
            #expect(user.status == 200)
            cookie.value = browser.cookies(host: "localhost")["__Host-bff-session"]
        }
        let saved = try #require(cookie.value)
        // Restart with the same key: still logged in.
        try await withGateway(path: path, keys: [Self.k1]) { env, browser in
            browser.setCookie(host: "localhost", name: "__Host-bff-session", value: saved)
            let page = try await env.user(browser)
            #expect(page.status == 200)
            #expect(page.body.contains("alice-7f3b"))
        }
        // A new first key keeps existing sessions valid.
        try await withGateway(path: path, keys: [Self.k2, Self.k1]) { env, browser in
            browser.setCookie(host: "localhost", name: "__Host-bff-session", value: saved)
            let page = try await env.user(browser)
            #expect(page.status == 200)
        }
        // Removing the old key ends them: anonymous, never a 500.
        try await withGateway(path: path, keys: [Self.k2]) { env, browser in
            browser.setCookie(host: "localhost", name: "__Host-bff-session", value: saved)
            let page = try await env.user(browser)
            #expect(page.status == 401)
            #expect(page.body.contains("urn:bff:problem:unauthenticated"))
        }
    }

    @Test func logoutDeletesTheRow() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-logout-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sessions.sqlite"
        let store = try await SQLiteSessionStore.open(path: path)
        try await TestEnvironment.run(store: store, configure: { $0.session.store = .sqlite }) { env, browser in
            try await env.login(browser)
            let rows = try await store.count()
            #expect(rows == 1)
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect(logout.status == 302)
            #expect(try await store.count() == 0)
        }
        try await store.close()
    }

    /// Idle upstream connections on every event loop, so later calls can take the fast path.
    func warm(_ env: TestEnvironment, _ browser: TestBrowser) async throws {
        try await RemoteAPITests().warmUpstreamPools(env, browser, path: "/api/weatherforecast")
    }

    /// The SQLite store vouches for records it read or wrote within the last second, so API calls
    /// take the event-loop fast path; the gateway's own writes (logout) end that at once.
    @Test func sqliteSessionsTakeTheFastPathAndLogoutEndsThemAtOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-fast-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withGateway(path: directory + "/sessions.sqlite", keys: [Self.k1]) { env, browser in
            try await env.login(browser)
            try await warm(env, browser)
            let fastBefore = env.forwarder.fastExchangeCount
            for _ in 0..<5 {
                #expect(try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf).status == 200)
            }
            #expect(env.forwarder.fastExchangeCount > fastBefore, "served on the event loop")
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect(logout.status == 302)
            let after = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf)
            #expect(after.status == 401, "ended at once, not after the confirmation window")
        }
    }

    /// A session ended by another process on the same file (what `bff sessions revoke` does) stops
    /// working within the store's confirmation window, even while its calls take the fast path.
    @Test func sessionsEndedByAnotherProcessStopWithinTheConfirmationWindow() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-other-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sessions.sqlite"
        try await withGateway(path: path, keys: [Self.k1]) { env, browser in
            try await env.login(browser)
            try await warm(env, browser)
            #expect(try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf).status == 200)
            let other = try await SQLiteSessionStore.open(path: path)
            let removed = try await other.removeAll(issuer: env.issuer, idpSessionID: nil, subject: "alice-7f3b")
            try await other.close()
            #expect(removed.count == 1)
            // Timed by when each call was sent: no call sent after the window may still be served (a
            // loaded machine's request latency is not the store's staleness).
            let started = ContinuousClock.now
            var status = 200
            var lastServedSentAt = started
            while status == 200 && ContinuousClock.now - started < .seconds(5) {
                let sent = ContinuousClock.now
                status = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf).status
                if status == 200 {
                    lastServedSentAt = sent
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(status == 401)
            #expect(
                lastServedSentAt - started < SQLiteSessionStore.confirmationWindow + .milliseconds(250),
                "a call sent \(lastServedSentAt - started) after the removal was still served")
        }
    }

    @Test func expiredSessionsAreCleanedUpAndTheirRefreshTokensRevoked() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bff-cleanup-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await TestEnvironment.run(gatewayTime: clock, store: store, configure: { $0.session.store = .sqlite }) {
            env, browser in
            try await env.login(browser)
            let cleanup = SessionCleanupService(bff: env.gateway.bff, store: store)
            #expect(await cleanup.cleanOnce() == 0, "nothing expired yet")
            clock.advance(by: 8 * 3600 + 1)  // past the 8 h idle timeout
            #expect(await cleanup.cleanOnce() == 1)
            #expect(try await store.count() == 0)
            let revoked = try await eventually(until: { $0 == 1 }) { await env.idp.statistics().refreshTokensRevoked }
            #expect(revoked == 1)
        }
        try await store.close()
    }
}

final class CookieBox: @unchecked Sendable {
    // justified: written once by the first gateway run and read after it has finished (sequential).
    var value: String?
}
