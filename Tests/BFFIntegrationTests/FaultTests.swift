import BFFCore
import BFFForwarder
import BFFTesting
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

/// Clients and upstreams that misbehave at every phase of an exchange, on both pipelines (the
/// event-loop path and the router path): afterwards no upstream connection may stay leased and the
/// gateway must serve the next calls. The pools are small (8 per event loop) so a leak shows up
/// as requests that wait and fail instead of hiding in a large pool.
@Suite("Faults at every phase, both pipelines")
struct FaultTests {
    let harness = RemoteAPITests()
    static let smallPools = NIOUpstream.Configuration(maximumConnectionsPerLoop: 8, waitTimeout: .seconds(2))

    func port(_ env: TestEnvironment) throws -> Int {
        try #require(env.origin.split(separator: ":").last.flatMap { Int($0) })
    }

    /// Runs `count` clients, `width` at a time.
    func inBatches(_ count: Int, width: Int = 25, _ client: @escaping @Sendable (Int) async throws -> Void)
        async throws
    {
        var started = 0
        while started < count {
            let batch = min(width, count - started)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in started..<(started + batch) {
                    group.addTask { try await client(index) }  // justified: structured child task of the group
                }
                try await group.waitForAll()
            }
            started += batch
        }
    }

    @Test(arguments: [true, false])
    func clientsResettingAtEveryPhaseLeaveNoLeaseBehind(fastPath: Bool) async throws {
        let calls = APICallLog()
        try await harness.withProxy(
            serverIdleTimeout: .seconds(2), fastPath: fastPath, apiCalls: calls, forwarder: Self.smallPools
        ) { env, browser, _ in
            let port = try port(env)
            try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200")

            // The gateway may close a connection before the client is done sending (a 503 from a
            // saturated small pool, an early answer to an upload): a failed send is part of the
            // fault, not a test failure; what counts is that nothing leaks (checked below).
            // 1. Before the response head: the upstream answers after 150 ms; the client is gone by then.
            try await inBatches(100) { index in
                let client = try await RawConnection.open(port: port)
                try? await client.send(
                    "GET /api/misc/slow/150?fault=head-\(index) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n")
                try await Task.sleep(for: .milliseconds(30))
                await client.reset()
            }
            // 2. Mid-body: a 4 MiB download, reset after the first 64 KiB arrived.
            try await inBatches(100) { index in
                let client = try await RawConnection.open(port: port)
                try? await client.send(
                    "GET /api/misc/download/4194304?fault=body-\(index) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n"
                )
                _ = try await client.waitFor(bytes: 65536)
                await client.reset()
            }
            // 3. Mid-upload: 64 KiB of a declared 1 MiB body, then a reset.
            try await inBatches(100) { index in
                let client = try await RawConnection.open(port: port)
                try? await client.send(
                    "POST /api/misc/echo/upload?fault=upload-\(index) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n"
                        + "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n")
                try? await client.send(bytes: 65536)
                try await Task.sleep(for: .milliseconds(10))
                await client.reset()
            }
            // 4. Paused readers: large downloads nobody reads, then resets.
            try await inBatches(40, width: 40) { index in
                let client = try await RawConnection.open(port: port, reading: false)
                try? await client.send(
                    "GET /api/misc/download/33554432?fault=paused-\(index) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n"
                )
                client.read()
                try await Task.sleep(for: .milliseconds(500))
                await client.reset()
            }

            // 5. With the event-loop path on: mid-body resets of calls that find an idle pooled
            //    connection (warmed before each), so that path meets the fault for certain.
            if fastPath {
                for index in 0..<40 {
                    try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200")
                    let client = try await RawConnection.open(port: port)
                    try? await client.send(
                        "GET /api/misc/download/4194304?fault=fast-\(index) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n"
                    )
                    _ = try await client.waitFor(bytes: 65536)
                    await client.reset()
                }
            }

            let leased = try await eventually(attempts: 250, every: .milliseconds(40), until: { $0 == 0 }) {
                env.forwarder.statistics.leased
            }
            #expect(leased == 0, "every upstream connection back to idle or closed")

            // The next 100 calls all succeed.
            let statuses = Statuses()
            try await inBatches(100, width: 10) { index in
                let page = try await browser.get(env.origin + "/api/bulk/status/200?after=\(index)", headers: env.csrf)
                statuses.add(page.status)
            }
            #expect(statuses.all == Array(repeating: 200, count: 100), "\(statuses.counts)")
            // The last call's lease is given back once its response has been written, which the
            // client may see first (one such read in a full run): awaited, not sampled.
            let leasedAfter = try await eventually(attempts: 50, every: .milliseconds(20), until: { $0 == 0 }) {
                env.forwarder.statistics.leased
            }
            #expect(leasedAfter == 0)

            // Which pipeline the faulty requests met: with the fast path on, some were served on the
            // event loop; with it off, none.
            let eventLoop = calls.pipelines(for: "fault=").filter { $0 == .eventLoop }.count
            if fastPath {
                #expect(eventLoop > 0, "the event-loop path met faults too")
            } else {
                #expect(eventLoop == 0)
            }
        }
    }

    /// An upstream that sends the head and some body, then nothing: cut off after the route's
    /// timeout (3 s, so that a loaded runner still gets the head in time) without progress, the
    /// client connection closed, the upstream connection not kept.
    @Test(arguments: [true, false])
    func anUpstreamStallingMidBodyIsCutOff(fastPath: Bool) async throws {
        let calls = APICallLog()
        try await harness.withProxy(
            fastPath: fastPath, apiCalls: calls, forwarder: Self.smallPools,
            configure: { settings in
                if let misc = settings.apis.first(where: { $0.path == "/api/misc" }) {
                    settings.apis.append(
                        APIRouteConfiguration(
                            path: "/api/stalling", upstream: misc.upstream, token: .none, timeout: .seconds(3)))
                }
            }
        ) { env, browser, _ in
            try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200")
            let client = try await RawConnection.open(port: try port(env))
            let started = ContinuousClock.now
            try await client.send(
                "GET /api/stalling/stall/1000?m=stall HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n")
            #expect(try await client.waitFor(bytes: 1000), "head and the first bytes arrive")
            #expect(client.received.status == 200)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.channel.closeFuture.get() }  // justified: structured child task
                group.addTask {  // justified: structured child task
                    try await Task.sleep(for: .seconds(10))
                    throw TestServerError(message: "the stalled response was never cut off")
                }
                try await group.next()
                group.cancelAll()
            }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(2900) && elapsed < .seconds(8), "cut off after the 3 s route timeout")
            let leased = try await eventually(until: { $0 == 0 }) { env.forwarder.statistics.leased }
            #expect(leased == 0)
            if fastPath { #expect(calls.pipeline(for: "m=stall") == .eventLoop) }
            #expect(try await browser.get(env.origin + "/api/bulk/status/200", headers: env.csrf).status == 200)
        }
    }

    /// Every connection of a pool held by slow calls: further calls wait at most the pool's wait
    /// deadline, then get 503 `upstream-busy` with `Retry-After`; `/readyz` reports the saturated
    /// pool, and recovers once connections come back.
    @Test func waitingForAPooledConnectionIsBoundedAndReported() async throws {
        let pools = NIOUpstream.Configuration(maximumConnectionsPerLoop: 1, waitTimeout: .milliseconds(300))
        // The held calls take 3 s on a route whose timeout is far longer, so a loaded machine
        // cannot turn them into timeouts.
        try await harness.withProxy(
            fastPath: false, forwarder: pools,
            configure: { settings in
                let misc = settings.apis.first { $0.path == "/api/misc" }
                if let misc {
                    settings.apis.append(
                        APIRouteConfiguration(
                            path: "/api/held", upstream: misc.upstream, token: .none, timeout: .seconds(30)))
                }
            }
        ) { env, browser, _ in
            let port = try port(env)
            let clients = try await withThrowingTaskGroup(of: RawConnection.self) { group in
                for index in 0..<8 {
                    group.addTask {  // justified: structured child task of the group
                        let client = try await RawConnection.open(port: port)
                        try await client.send(
                            "GET /api/held/slow/3000?busy=\(index) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n")
                        return client
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            try await Task.sleep(for: .milliseconds(1500))
            let ready = try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz")
            #expect(ready.status == 503)
            #expect(ready.body.contains("every pooled connection stuck"), "\(ready.body)")
            for client in clients { _ = try await client.waitFor(bytes: 12, timeout: .seconds(15)) }
            let statuses = clients.compactMap(\.received.status)
            #expect(statuses.count == 8)
            #expect(statuses.contains(200))
            let busy = clients.filter { $0.received.status == 503 }
            #expect(!busy.isEmpty, "\(statuses)")
            for client in busy {
                #expect(client.received.head.contains("urn:bff:problem:upstream-busy"))
                #expect(client.received.head.lowercased().contains("retry-after: 1"))
            }
            for client in clients { await client.reset() }
            let recovered = try await eventually(until: { $0 == 200 }) {
                try await browser.get("http://127.0.0.1:\(env.adminPort)/readyz").status
            }
            #expect(recovered == 200)
        }
    }
}

/// Statuses collected from concurrent calls.
final class Statuses: Sendable {
    private let values = Mutex<[Int]>([])
    func add(_ status: Int) { values.withLock { $0.append(status) } }
    var all: [Int] { values.withLock { $0 } }
    var counts: [Int: Int] { values.withLock { $0.reduce(into: [:]) { $0[$1, default: 0] += 1 } } }
}

/// Log lines a test can read (swift-log handler).
extension FaultTests {
    /// Connections that end without a complete request are routine on the internet (health
    /// checkers, browsers' preconnects, scanners): idle until the timeout, closed or reset by the
    /// client before or in the middle of a head. Nothing about them is logged above debug, and the
    /// gateway serves on.
    /// (On the plain server, on the router-only one, and on the upgrade server a WebSocket route
    /// needs.) A malformed request gets its 400 and no log above debug either.
    @Test(arguments: [(true, false), (false, false), (true, true)])
    func connectionsWithoutARequestLogNothingAboveDebug(fastPath: Bool, websocket: Bool) async throws {
        let log = LogRecorder()
        try await harness.withProxy(
            serverIdleTimeout: .seconds(1), fastPath: fastPath, logger: log.logger,
            configure: { settings in
                if websocket {
                    settings.apis.append(
                        APIRouteConfiguration(
                            path: "/api/live", upstream: "http://127.0.0.1:1/socket", token: .user, websocket: true))
                }
            }
        ) { env, browser, _ in
            let port = try port(env)
            let before = log.all.count  // the servers' start-up lines
            let malformed = try await RawHTTP.exchange(port: port, request: "GARBAGE\r\n\r\n")
            #expect(malformed.hasPrefix("HTTP/1.1 400"), "\(malformed)")
            // Idle until the gateway's idle timeout closes it.
            let idle = try await RawConnection.open(port: port)
            // Half a head, then nothing until the timeout.
            let halfIdle = try await RawConnection.open(port: port)
            try await halfIdle.send("GET /api/bulk/status/200 HTTP/1.1\r\nHost: local")
            // Closed by the client at once; reset at once; half a head, then reset.
            let closed = try await RawConnection.open(port: port)
            try await closed.channel.close()
            let reset = try await RawConnection.open(port: port)
            await reset.reset()
            let halfReset = try await RawConnection.open(port: port)
            try await halfReset.send("POST /bff/user HTTP/1.1\r\nHost: localhost\r\nContent-Le")
            await halfReset.reset()
            try await idle.channel.closeFuture.get()
            try await halfIdle.channel.closeFuture.get()
            try await Task.sleep(for: .milliseconds(200))
            let loud = log.all.dropFirst(before).filter { $0.level > .debug }
            #expect(loud.isEmpty, "\(loud.map { "\($0.level) \($0.message) \($0.metadata)" })")
            #expect(try await browser.get(env.origin + "/api/bulk/status/200", headers: env.csrf).status == 200)
        }
    }
}

final class LogRecorder: Sendable {
    struct Line: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }
    private let lines = Mutex<[Line]>([])
    var all: [Line] { lines.withLock { $0 } }

    var logger: Logger {
        Logger(label: "bff.test.recorded") { _ in Handler(recorder: self) }
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            recorder.lines.withLock {
                $0.append(
                    Line(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" })
                )
            }
        }
    }
}

extension FaultTests {
    /// An upstream failure is logged the same way whichever pipeline met it: before the head
    /// (504 after the route timeout) and mid-body (a stalled upstream, the connection closed).
    @Test(arguments: [true, false])
    func upstreamFailuresAreLoggedOnBothPipelines(fastPath: Bool) async throws {
        let log = LogRecorder()
        let calls = APICallLog()
        try await harness.withProxy(fastPath: fastPath, apiCalls: calls, logger: log.logger) { env, browser, _ in
            try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200")
            let timedOut = try await browser.get(env.origin + "/api/misc/slow/3000?m=log-head", headers: env.csrf)
            #expect(timedOut.status == 504)
            try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200")
            let client = try await RawConnection.open(port: try port(env))
            try await client.send("GET /api/misc/stall/100?m=log-body HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n")
            try await client.channel.closeFuture.get()
            let lines = try await eventually(until: { $0.count >= 2 }) {
                log.all.filter { $0.message == "upstream request failed" }
            }
            #expect(lines.count == 2, "\(lines.map(\.metadata))")
            #expect(lines.map { $0.metadata["bff.phase"] } == ["head", "body"])
            #expect(lines.allSatisfy { $0.level == .warning && $0.metadata["bff.api"] == "/api/misc" })
            #expect(lines.map { $0.metadata["bff.error"] } == ["upstream timed out", "upstream timed out"])
            if fastPath { #expect(calls.pipeline(for: "m=log-body") == .eventLoop) }
        }
    }
}

extension FaultTests {
    /// The review's request desync: an upstream answers (keep-alive) before the whole body went
    /// up and the client then goes away; the next user's request must never travel as the rest of
    /// that body on the same upstream connection.
    @Test(arguments: [false, true])
    func anUploadCutShortNeverLeavesItsConnectionToTheNextRequest(reset: Bool) async throws {
        try await harness.withProxy(forwarder: NIOUpstream.Configuration(maximumConnectionsPerLoop: 1)) {
            env, browser, _ in
            let port = try port(env)
            for round in 0..<5 {
                let attacker = try await RawConnection.open(port: port)
                try await attacker.send(
                    "POST /api/misc/early?round=\(round) HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n"
                        + "Content-Length: 1000\r\n\r\n" + String(repeating: "A", count: 10))
                _ = try await attacker.waitFor(bytes: 12, timeout: .milliseconds(300))
                // The gateway may have closed first: an early response ends the connection.
                if reset { await attacker.reset() } else { try? await attacker.channel.close() }
                try await Task.sleep(for: .milliseconds(50))
                for victim in 0..<2 {
                    let page = try await browser.get(
                        env.origin + "/api/bulk/echo/victim-\(round)-\(victim)",
                        headers: env.csrf + [("X-Victim", "secret")])
                    #expect(page.status == 200, "round \(round): \(page.status)")
                    if page.status == 200 {
                        #expect(
                            try harness.echoed(page).path == "/echo/victim-\(round)-\(victim)",
                            "the victim's own request was served")
                    }
                }
            }
            let leased = try await eventually(until: { $0 == 0 }) { env.forwarder.statistics.leased }
            #expect(leased == 0)
        }
    }

    /// An upstream that answers a complete response early and reads no more of a large upload:
    /// the exchange ends with that response instead of waiting for ever, and nothing stays leased.
    @Test func anEarlyCompleteResponseEndsALargeUpload() async throws {
        try await harness.withProxy { env, _, _ in
            let client = try await RawConnection.open(port: try port(env))
            try await client.send(
                "POST /api/misc/early HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nContent-Length: 67108864\r\n\r\n")
            // Keep uploading in the background of the test until the answer arrives.
            let started = ContinuousClock.now
            while client.received.status == nil, ContinuousClock.now - started < .seconds(10) {
                try? await client.send(bytes: 262144)
            }
            #expect(client.received.status == 200, "\(client.received.head)")
            #expect(ContinuousClock.now - started < .seconds(10))
            await client.reset()
            let leased = try await eventually(attempts: 200, until: { $0 == 0 }) { env.forwarder.statistics.leased }
            #expect(leased == 0)
        }
    }
}
