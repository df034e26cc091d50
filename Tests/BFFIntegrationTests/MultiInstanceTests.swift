import BFFCore
import BFFTesting
import Foundation
import ServiceLifecycle
import Testing

@testable import BFFGateway
@testable import BFFSessionStorePostgres

/// A store's change subscription as a service (the store's own `run()` would also close its pool
/// at shutdown, before the test drops its schema).
struct ChangeSubscription: Service {
    let store: PostgresSessionStore
    func run() async throws { await cancelWhenGracefulShutdown { await store.listenForChanges() } }
}

/// Two gateway instances behind one load balancer, sharing one PostgreSQL database (each with its
/// own connection pool, listener and forwarder). Needs `BFF_TEST_POSTGRES_URL`; `.ci/run` sets it.
@Suite("Several gateway instances on one PostgreSQL")
struct MultiInstanceTests {
    static let url = ProcessInfo.processInfo.environment["BFF_TEST_POSTGRES_URL"]

    /// Two stores on a fresh schema, two gateways (A = env.origin, B = env.peerOrigin) with an echo
    /// API at /api/echo (`token: user`).
    func withTwoInstances(
        clock: ManualTimeSource? = nil, cookieMode: Bool = false,
        _ body: @Sendable (TestEnvironment, TestBrowser) async throws -> Void
    ) async throws {
        var configuration = try PostgresSessionStore.Configuration(url: try #require(Self.url))
        configuration.schema = "t_multi_" + SystemSecureRandom().bytes(5).map { String($0, radix: 16) }.joined()
        configuration.maximumConnections = 8
        let a = try await PostgresSessionStore.open(configuration: configuration, logger: TestEnvironment.quietLogger)
        let b = try await PostgresSessionStore.open(configuration: configuration, logger: TestEnvironment.quietLogger)
        let echoPort = try await TestServers.freePort()
        do {
            try await TestEnvironment.run(
                // Each store keeps its change subscription, as under `bff serve`.
                extraServices: [
                    EchoUpstream.makeApplication(port: echoPort, logger: TestEnvironment.quietLogger),
                    ChangeSubscription(store: a), ChangeSubscription(store: b),
                ],
                extraPorts: [echoPort], gatewayTime: clock, store: cookieMode ? nil : a,
                revocationFeed: cookieMode ? a : nil,
                peer: (store: cookieMode ? nil : b, revocationFeed: cookieMode ? b : nil),
                configure: { settings in
                    settings.session.store = cookieMode ? .cookie : .postgres
                    settings.apis.append(
                        APIRouteConfiguration(
                            path: "/api/echo", upstream: "http://127.0.0.1:\(echoPort)/echo", token: .user))
                }
            ) { env, browser in
                if !cookieMode {
                    _ = try await eventually(until: { $0 }) { a.isSubscribedToChanges && b.isSubscribedToChanges }
                }
                try await body(env, browser)
            }
        } catch {
            try? await a.dropSchema()
            await a.close()
            await b.close()
            throw error
        }
        try await a.dropSchema()
        await a.close()
        await b.close()
    }

    /// When the first call answered 401 was sent (polling every 5 ms for up to 2 s).
    func firstRefusal(_ call: () async throws -> Int) async throws -> ContinuousClock.Instant {
        for _ in 0..<400 {
            let sent = ContinuousClock.now
            if try await call() == 401 { return sent }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw Failure("the ended session was never refused within 2 s")
    }

    func logoutToken(_ env: TestEnvironment, sid: String) throws -> String {
        let claims: [String: JSONValue] = [
            "iss": .string(env.issuer), "aud": "bff-demo", "iat": .int(SystemTimeSource().now),
            "jti": .string(UUID().uuidString), "sub": "alice-7f3b", "sid": .string(sid),
            "events": .object(["http://schemas.openid.net/event/backchannel-logout": .object([:])]),
        ]
        return try env.idp.keys.sign(claims: claims)
    }

    func backchannel(_ origin: String, _ browser: TestBrowser, token: String) async throws -> TestBrowser.Page {
        try await browser.request(
            "POST", origin + "/bff/backchannel", headers: [("content-type", "application/x-www-form-urlencoded")],
            body: Array(FormEncoding.encode([("logout_token", token)]).utf8), sendCookies: false)
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func loginOnAServesOnBAndBackchannelToBEndsItOnA() async throws {
        try await withTwoInstances { env, browser in
            let peer = try #require(env.peerOrigin)
            try await env.login(browser)
            let sid = try #require(TestEnvironment.query(try await env.logoutURL(browser))["sid"])
            // The session created on A is served by B, with the user's token at the API.
            let user = try await browser.get(peer + "/bff/user", headers: env.csrf)
            #expect(user.status == 200)
            let api = try await browser.get(peer + "/api/echo", headers: env.csrf)
            #expect(api.status == 200)
            #expect(try EchoedRequest(json: api.body).values("authorization").first?.hasPrefix("Bearer ") == true)
            // Back-channel logout delivered to B stops API calls on A within 100 ms (A answers them
            // from its cache, kept current by LISTEN/NOTIFY).
            _ = try await browser.get(env.origin + "/api/echo", headers: env.csrf)
            #expect(try await backchannel(peer, browser, token: logoutToken(env, sid: sid)).status == 200)
            let delivered = ContinuousClock.now
            let stopped = try await firstRefusal {
                try await browser.get(env.origin + "/api/echo", headers: env.csrf).status
            }
            #expect(stopped - delivered < .milliseconds(100))
            #expect(try await env.user(browser).status == 401)
            #expect(try await browser.get(peer + "/bff/user", headers: env.csrf).status == 401)
        }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func aLogoutOnAStopsAPICallsOnBWithin100ms() async throws {
        try await withTwoInstances { env, browser in
            let peer = try #require(env.peerOrigin)
            try await env.login(browser)
            let cookies = browser.cookies(host: "localhost")
            // B serves the session (and from then on answers from its cache).
            for _ in 0..<3 { #expect(try await browser.get(peer + "/api/echo", headers: env.csrf).status == 200) }
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect((300..<400).contains(logout.status))
            let loggedOut = ContinuousClock.now
            // The same cookies, replayed to B.
            for (name, value) in cookies { browser.setCookie(host: "localhost", name: name, value: value) }
            // When the first call that B refused was sent (its own latency is not B's staleness).
            let stopped = try await firstRefusal { try await browser.get(peer + "/api/echo", headers: env.csrf).status }
            #expect(stopped - loggedOut < .milliseconds(100))
        }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func fiftyCallsSplitOverTwoInstancesCauseOneRefresh() async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await withTwoInstances(clock: clock) { env, browser in
            let peer = try #require(env.peerOrigin)
            try await env.login(browser)
            clock.advance(by: 241)  // the 300 s access token now expires within refreshBeforeExpiry
            let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for index in 0..<50 {
                    let origin = index % 2 == 0 ? env.origin : peer
                    group.addTask {  // justified: structured child task of the group
                        let page = try await browser.get(origin + "/api/echo", headers: env.csrf)
                        let token = (try? EchoedRequest(json: page.body).values("authorization").first) ?? ""
                        return (page.status, page.status == 200 ? token : page.body)
                    }
                }
                return try await group.reduce(into: [(Int, String)]()) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.0 == 200 }, "\(results.filter { $0.0 != 200 }.prefix(3))")
            #expect(Set(results.map(\.1)).count == 1, "all fifty, on both instances, used the same new token")
            let statistics = await env.idp.statistics()
            #expect(statistics.refreshRequests == 1, "exactly one refresh-token request at the IdP")
            #expect(statistics.refreshReuseDetected == 0, "no refresh token was replayed")
            // And the session keeps working on both after the rotation.
            clock.advance(by: 10)
            #expect(try await browser.get(peer + "/api/echo", headers: env.csrf).status == 200)
            #expect(try await browser.get(env.origin + "/api/echo", headers: env.csrf).status == 200)
            #expect(await env.idp.statistics().refreshRequests == 1)
        }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func cookieModeRevocationsReachTheOtherInstanceWithinOneSecond() async throws {
        try await withTwoInstances(cookieMode: true) { env, browser in
            let peer = try #require(env.peerOrigin)
            // 1. Logout on A; the old cookies, replayed to B, are anonymous within 1 s.
            try await env.login(browser)
            let stolen = browser.cookies(host: "localhost")
            #expect(try await browser.get(peer + "/bff/user", headers: env.csrf).status == 200)
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect((300..<400).contains(logout.status))
            let loggedOut = ContinuousClock.now
            for (name, value) in stolen { browser.setCookie(host: "localhost", name: name, value: value) }
            let replayed = try await eventually(attempts: 50, until: { $0 == 401 }) {
                try await browser.get(peer + "/bff/user", headers: env.csrf).status
            }
            #expect(replayed == 401)
            #expect(ContinuousClock.now - loggedOut < .seconds(1))

            // 2. Back-channel logout delivered to B ends another user agent's cookie session on A within 1 s.
            let other = TestBrowser()
            do {
                try await env.login(other)
                let sid = try #require(TestEnvironment.query(try await env.logoutURL(other))["sid"])
                #expect(try await backchannel(peer, other, token: logoutToken(env, sid: sid)).status == 200)
                let delivered = ContinuousClock.now
                let onA = try await eventually(attempts: 50, until: { $0 == 401 }) { try await env.user(other).status }
                #expect(onA == 401)
                #expect(ContinuousClock.now - delivered < .seconds(1))
            } catch {
                try? await other.shutdown()
                throw error
            }
            try await other.shutdown()
        }
    }
}
