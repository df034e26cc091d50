import BFFCore
import BFFSessionStorePostgres
import BFFSessionStoreSQLite
import BFFTesting
import Foundation
import ServiceLifecycle
import Synchronization
import Testing

@testable import BFFGateway

/// A session-store outage answers, never hangs, and never looks like a logout (SPEC §11.1):
/// a real PostgreSQL cluster of the test's own is stopped under load and started again.
@Suite("Session store outage: a real PostgreSQL stopped and restarted under load", .serialized)
struct StoreOutageTests {
    /// Needs the PostgreSQL server binaries (`.ci/run` installs them; the run fails without them
    /// when BFF_REQUIRE_INTEROP is set).
    static var available: Bool {
        (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.isEmpty == false
    }

    struct Cluster {
        let directory = "/tmp/swift-bff-outage-\(UUID().uuidString.prefix(8))"
        /// A free port below the ephemeral range (no client socket can hold it meanwhile).
        let port: Int

        /// Runs a cluster script with posix_spawn and waitpid (Foundation's Process can hang in
        /// tasks on Linux); returns its standard output.
        func run(_ script: String, _ arguments: [String] = []) async throws -> String {
            let outputPath = directory + ".out"
            // Descriptors above 2 are closed first: PostgreSQL would otherwise inherit the test
            // process's sockets (listeners of other tests' servers) for as long as it runs.
            let command =
                "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done 2>/dev/null; "
                + "BFF_PG_DIR=\(directory) BFF_PG_PORT=\(port) bash scripts/postgres/\(script) "
                + arguments.joined(separator: " ") + " > \(outputPath)"
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/bash"), strdup("-c"), strdup(command), nil]
            defer { for pointer in argv { free(pointer) } }
            guard posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ) == 0 else {
                throw TestServerError(message: "cannot start \(script)")
            }
            var status: Int32 = 0
            while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(20)) }
            let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: outputPath)
            guard status == 0 else { throw TestServerError(message: "\(script) \(arguments) failed: \(status)") }
            return output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// What the load loop saw.
    final class Observations: Sendable {
        final class Flag: Sendable {
            private let value = Atomic(false)
            var isSet: Bool { value.load(ordering: .relaxed) }
            func set() { value.store(true, ordering: .relaxed) }
        }

        private let state = Mutex<[(at: ContinuousClock.Instant, status: Int, seconds: Double, cleared: Bool)]>([])
        func add(_ status: Int, seconds: Double, cleared: Bool) {
            state.withLock { $0.append((.now, status, seconds, cleared)) }
        }
        var all: [(at: ContinuousClock.Instant, status: Int, seconds: Double, cleared: Bool)] {
            state.withLock { $0 }
        }
    }

    @Test(.enabled(if: StoreOutageTests.available || ProcessInfo.processInfo.environment["BFF_REQUIRE_INTEROP"] != nil))
    func stoppedDatabaseAnswers503AndServiceResumesAfterIt() async throws {
        let cluster = Cluster(port: try await TestServers.freePort())
        let url = try await cluster.run("start.sh")
        do {
            try await outage(cluster: cluster, url: url)
        } catch {
            _ = try? await cluster.run("stop.sh")
            throw error
        }
        _ = try await cluster.run("stop.sh")
    }

    func outage(cluster: Cluster, url: String) async throws {
        let configuration = try PostgresSessionStore.Configuration(url: url)
        let store = try await PostgresSessionStore.open(
            configuration: configuration, logger: TestEnvironment.quietLogger)
        try await withEchoRoute(store: store, kind: .postgres, running: [store]) { env, browser in
            try await env.login(browser)
            #expect(try await env.user(browser).status == 200)
            #expect(try await browser.get(env.origin + "/api/echo/x", headers: env.csrf).status == 200)

            // Load: /bff/user and an API call, back to back, the whole time.
            let observations = Observations()
            let stop = Observations.Flag()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for path in ["/bff/user", "/api/echo/x"] {
                    group.addTask {  // justified: structured child task of the group
                        while !stop.isSet {
                            let started = ContinuousClock.now
                            let page = try await browser.get(env.origin + path, headers: env.csrf)
                            let seconds = (ContinuousClock.now - started).seconds
                            observations.add(
                                page.status, seconds: seconds,
                                cleared: page.headerValues("set-cookie").contains { $0.contains("Max-Age=0") })
                            try await Task.sleep(for: .milliseconds(25))
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(500))
                _ = try await cluster.run("cycle.sh", ["stop"])
                let stoppedAt = ContinuousClock.now

                // /readyz answers 503 within a second while the database is down.
                try await Task.sleep(for: .seconds(1))
                let readyStarted = ContinuousClock.now
                let ready = try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz")
                #expect(ready.status == 503, "\(ready.body)")
                #expect(ready.body.contains("session store unavailable"))
                // Its checks have 1 s each, side by side; the rest is a loaded test machine's slack
                // (what this rules out is waiting for the driver's or TCP's own timeouts: tens of s).
                #expect(ContinuousClock.now - readyStarted < .seconds(3), "readyz answered promptly")

                // A login completing during the outage shows the callback's 503 page.
                let second = TestBrowser()
                do {
                    let callback = try await env.login(second, mayFail: true)
                    #expect(callback.status == 503, "\(callback.status)")
                    #expect(callback.header("content-type")?.hasPrefix("text/html") == true)
                } catch {
                    try? await second.shutdown()
                    throw error
                }
                try await second.shutdown()

                try await Task.sleep(for: .seconds(3))
                _ = try await cluster.run("cycle.sh", ["start"])
                let restartedAt = ContinuousClock.now
                let back = try await eventually(attempts: 300, every: .milliseconds(50), until: { $0 == 200 }) {
                    try await env.user(browser).status
                }
                #expect(back == 200)
                let recovery = ContinuousClock.now - restartedAt
                #expect(recovery < .seconds(5), "service resumed \(recovery) after the database returned")
                try await Task.sleep(for: .milliseconds(300))
                stop.set()
                try await group.waitForAll()

                let seen = observations.all
                let during = seen.filter { $0.at > stoppedAt && $0.at < restartedAt }
                #expect(!during.isEmpty)
                #expect(seen.allSatisfy { $0.status == 200 || $0.status == 503 }, "\(Set(seen.map(\.status)))")
                #expect(!seen.contains { $0.status == 401 }, "an outage never looks like a logout")
                #expect(!seen.contains { $0.cleared }, "the session cookie is never cleared")
                #expect(during.contains { $0.status == 503 })
                let slowest = seen.map(\.seconds).max() ?? 0
                // The store deadline is 2 s; 5 s leaves a loaded machine its slack and still rules
                // out a call waiting for the driver's or TCP's own timeouts.
                #expect(slowest < 5.0, "every call answered within the store deadline (slowest \(slowest) s)")
            }
            // The same session works afterwards.
            #expect(try await browser.get(env.origin + "/api/echo/x", headers: env.csrf).status == 200)
        }
        await store.close()
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A store whose every call fails while `failing` is set (an SQLite I/O error: disk full, a
/// removed file), else the wrapped store's answer.
final class FailingStore: SessionStore {
    let base: any SessionStore
    private let failing = Atomic(false)
    init(base: any SessionStore) { self.base = base }
    func fail(_ value: Bool) { failing.store(value, ordering: .relaxed) }
    struct IOError: Error {}
    func check() throws { if failing.load(ordering: .relaxed) { throw IOError() } }

    func insert(_ record: SessionRecord) async throws {
        try check()
        try await base.insert(record)
    }
    func find(key: [UInt8], now: UnixTime) async throws -> SessionRecord? {
        await waitWhileHanging()
        try check()
        return try await base.find(key: key, now: now)
    }

    /// Lookups hang, ignoring cancellation (a driver stuck on a dead connection), until released.
    private let gate = Mutex<(hanging: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func hang(_ value: Bool) {
        let released = gate.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.hanging = value
            guard !value else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in released { waiter.resume() }
    }
    private func waitWhileHanging() async {
        await withCheckedContinuation { continuation in
            let now = gate.withLock { state -> Bool in
                guard state.hanging else { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
    func update(_ record: SessionRecord) async throws {
        try check()
        try await base.update(record)
    }
    func replace(_ record: SessionRecord, ifSealed expected: [UInt8]) async throws -> Bool {
        try check()
        return try await base.replace(record, ifSealed: expected)
    }
    func remove(key: [UInt8]) async throws -> SessionRecord? {
        try check()
        return try await base.remove(key: key)
    }
    func removeAll(issuer: String, idpSessionID: String?, subject: String?) async throws -> [SessionRecord] {
        try check()
        return try await base.removeAll(issuer: issuer, idpSessionID: idpSessionID, subject: subject)
    }
    func removeExpired(now: UnixTime) async throws -> [SessionRecord] {
        try check()
        return try await base.removeExpired(now: now)
    }
    func ping() async throws {
        try check()
        try await base.ping()
    }
    func list(issuer: String?, idpSessionID: String?, subject: String?, limit: Int) async throws -> [SessionRecord] {
        try check()
        return try await base.list(issuer: issuer, idpSessionID: idpSessionID, subject: subject, limit: limit)
    }
}

@Suite("Session store I/O errors")
struct StoreErrorTests {
    /// Every endpoint that needs the session answers 503 `store-unavailable` (with `Retry-After`),
    /// never 401 or 500, and keeps the cookie; logout changes nothing; afterwards all works.
    @Test func ioErrorsAnswer503AndKeepTheSession() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-io-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sqlite = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let store = FailingStore(base: sqlite)
        try await withEchoRoute(store: store, kind: .sqlite, fastPath: false) { env, browser in
            try await env.login(browser)
            let logout = try await env.logoutURL(browser)
            store.fail(true)
            for (name, page) in [
                ("user", try await env.user(browser)),
                ("api", try await browser.get(env.origin + "/api/echo/x", headers: env.csrf)),
                ("logout", try await browser.get(logout)),
            ] {
                #expect(page.status == 503, "\(name): \(page.status) \(page.body)")
                #expect(page.body.contains("urn:bff:problem:store-unavailable"), "\(name)")
                #expect(page.header("retry-after") == "2", "\(name)")
                #expect(page.headerValues("set-cookie").isEmpty, "\(name): cookie kept")
            }
            let ready = try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz")
            #expect(ready.status == 503)
            // The failures are counted by operation: the lookups of /bff/user, the API call and
            // the logout.
            let failing = try await MetricsTests().scrape(env, browser)
            #expect(failing[#"bff_session_store_errors_total{operation="find"}"#] >= 3, "\(failing.text)")
            #expect(failing[#"bff_session_store_duration_seconds_count{operation="find"}"#] >= 3)
            store.fail(false)
            // A lookup that hangs past session.storeTimeout (2 s) counts as failed when the caller
            // gets its 503, not when (if ever) the driver answers; its late answer is not counted.
            store.hang(true)
            let hanging = try await env.user(browser)
            #expect(hanging.status == 503)
            let timedOut = try await MetricsTests().scrape(env, browser)
            #expect(
                timedOut[#"bff_session_store_errors_total{operation="find"}"#]
                    == failing[#"bff_session_store_errors_total{operation="find"}"#] + 1, "\(timedOut.text)")
            store.hang(false)
            #expect(try await env.user(browser).status == 200, "the session survived")
            let recovered = try await MetricsTests().scrape(env, browser)
            #expect(
                recovered[#"bff_session_store_errors_total{operation="find"}"#]
                    == timedOut[#"bff_session_store_errors_total{operation="find"}"#], "the late answer is not counted")
            // The readiness probe's pings are counted too (the BFF's measured store).
            #expect(recovered[#"bff_session_store_errors_total{operation="ping"}"#] >= 1)
            #expect(try await browser.get(env.origin + "/api/echo/x", headers: env.csrf).status == 200)
        }
        try await sqlite.close()
    }
}

/// The standard environment on `store` (of `kind`) with an echo API at `/api/echo` (`token: user`).
func withEchoRoute(
    store: any SessionStore, kind: SessionStoreKind, fastPath: Bool = true, running: [any Service] = [],
    _ body: @Sendable (TestEnvironment, TestBrowser) async throws -> Void
) async throws {
    let echoPort = try await TestServers.freePort()
    try await TestEnvironment.run(
        extraServices: [EchoUpstream.makeApplication(port: echoPort, logger: TestEnvironment.quietLogger)] + running,
        extraPorts: [echoPort], store: store, apiFastPath: fastPath,
        configure: { settings in
            settings.session.store = kind
            settings.apis.append(
                APIRouteConfiguration(path: "/api/echo", upstream: "http://127.0.0.1:\(echoPort)/echo", token: .user))
        }, body)
}
