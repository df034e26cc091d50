import BFFCore
import BFFSessionStorePostgres
import BFFTesting
import Foundation
import Logging
import Synchronization
import Testing

/// PostgreSQL store tests. They need a server: `scripts/postgres/start.sh` prints the URL to put in
/// `BFF_TEST_POSTGRES_URL`; `.ci/run` does that, and with `BFF_REQUIRE_INTEROP=1` a missing URL is a
/// failure, not a skip. Each test works in a schema of its own, dropped at the end.
@Suite("PostgreSQL session store")
struct PostgresStoreTests {
    static let url = ProcessInfo.processInfo.environment["BFF_TEST_POSTGRES_URL"]
    static let required = ProcessInfo.processInfo.environment["BFF_REQUIRE_INTEROP"] == "1"

    @Test func serverIsConfiguredWhenRequired() {
        if Self.required {
            #expect(Self.url != nil, "BFF_REQUIRE_INTEROP=1 but BFF_TEST_POSTGRES_URL is not set")
        }
    }

    /// Opens `instances` stores on one fresh schema (as separate gateways would), runs `body`, drops it.
    static func withStores(
        instances: Int = 1, pool: Int = 4, _ body: ([PostgresSessionStore]) async throws -> Void
    ) async throws {
        let url = try #require(Self.url)
        let schema = "t_" + SystemSecureRandom().bytes(6).map { String($0, radix: 16) }.joined()
        var configuration = try PostgresSessionStore.Configuration(url: url)
        configuration.schema = schema
        configuration.maximumConnections = pool
        var stores: [PostgresSessionStore] = []
        do {
            for _ in 0..<instances { stores.append(try await PostgresSessionStore.open(configuration: configuration)) }
            try await body(stores)
        } catch {
            print("postgres test failed: \(String(reflecting: error))")
            try? await stores.first?.dropSchema()
            for store in stores { await store.close() }
            throw error
        }
        try await stores[0].dropSchema()
        for store in stores { await store.close() }
    }

    @Test(
        .enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"),
        arguments: SessionStoreConformance.Check.allCases)
    func conformance(_ check: SessionStoreConformance.Check) async throws {
        try await Self.withStores { stores in
            let store = stores[0]
            try await SessionStoreConformance.run(check, store: store) {
                // Every column of every row, as the database returns it.
                let rows = try await store.list(issuer: nil, idpSessionID: nil, subject: nil, limit: 100_000)
                var bytes: [UInt8] = []
                for row in rows {
                    bytes += row.key
                    bytes += row.sealed
                    bytes += Array(row.subject.utf8)
                    bytes += Array((row.idpSessionID ?? "").utf8)
                    bytes += Array(row.issuer.utf8)
                    bytes += row.revocationSeal ?? []
                }
                return bytes
            }
        }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func instancesStartingTogetherMigrateOnce() async throws {
        // Four instances open the same empty schema at once: the advisory lock serialises the
        // migration, so none fails on "relation already exists".
        let url = try #require(Self.url)
        var configuration = try PostgresSessionStore.Configuration(url: url)
        configuration.schema = "t_migrate_" + SystemSecureRandom().bytes(4).map { String($0, radix: 16) }.joined()
        configuration.maximumConnections = 2
        let shared = configuration
        let stores = try await withThrowingTaskGroup(of: PostgresSessionStore.self) { group in
            for _ in 0..<4 {
                group.addTask {  // justified: structured child task of the group
                    try await PostgresSessionStore.open(configuration: shared)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 4)
        try await stores[0].dropSchema()
        for store in stores { await store.close() }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func exclusiveSectionsDoNotOverlapAcrossInstances() async throws {
        // Two stores with their own connection pools (two gateways). 40 concurrent read-modify-write
        // sections on one row, each holding it for a moment: with the row lock no increment is lost
        // and no two sections overlap.
        try await Self.withStores(instances: 2) { stores in
            let key = Array(repeating: UInt8(7), count: 32)
            try await stores[0].insert(
                SessionRecord(
                    key: key, sealed: [0, 0], subject: "alice", idpSessionID: "sid", issuer: "https://idp.test",
                    createdAt: 1_000, renewedAt: 1_000, expiresAt: 9_000))
            let inside = Overlap()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    let store = stores[index % 2]
                    group.addTask {  // justified: structured child task of the group
                        try await store.exclusively(key: key, now: 1_500) { record in
                            inside.state.withLock {
                                $0.current += 1
                                $0.most = max($0.most, $0.current)
                            }
                            try await Task.sleep(for: .milliseconds(5))
                            inside.state.withLock { $0.current -= 1 }
                            guard var record else { return (nil, ()) }
                            let count = Int(record.sealed[0]) * 256 + Int(record.sealed[1]) + 1
                            record.sealed = [UInt8(count / 256), UInt8(count % 256)]
                            return (record, ())
                        }
                    }
                }
                try await group.waitForAll()
            }
            let final = try #require(try await stores[1].find(key: key, now: 1_500))
            #expect(Int(final.sealed[0]) * 256 + Int(final.sealed[1]) == 40)
            #expect(inside.state.withLock { $0.most } == 1)
        }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func cleanupByTwoInstancesReturnsEachRowOnce() async throws {
        // Expired rows are handed to exactly one instance (each revokes its refresh tokens).
        try await Self.withStores(instances: 2) { stores in
            let records = (0..<3_000).map { index in
                SessionRecord(
                    key: Array(SystemSecureRandom().bytes(32)), sealed: [UInt8(index % 256)], subject: "user-\(index)",
                    idpSessionID: nil, issuer: "https://idp.test", createdAt: 1, renewedAt: 1,
                    expiresAt: index < 2_500 ? 100 : 9_000)
            }
            try await stores[0].insert(batch: records)
            async let first = stores[0].removeExpired(now: 500)
            async let second = stores[1].removeExpired(now: 500)
            let (a, b) = try await (first, second)
            #expect(a.count + b.count == 2_500)
            #expect(Set(a.map(\.key)).isDisjoint(with: b.map(\.key)))
            #expect(try await stores[0].count() == 500)
        }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func revocationRecordsAreShared() async throws {
        try await Self.withStores(instances: 2) { stores in
            let (empty, start) = try await stores[1].revocations(after: 0)
            #expect(empty.isEmpty)
            try await stores[0].publishRevocation(entry: "sid\u{0}https://idp.test\u{0}abc", at: 1_000)
            try await stores[0].publishRevocation(entry: "lid\u{0}xyz", at: 1_001)
            let (entries, cursor) = try await stores[1].revocations(after: start)
            #expect(entries.map(\.0) == ["sid\u{0}https://idp.test\u{0}abc", "lid\u{0}xyz"])
            #expect(entries.map(\.1) == [1_000, 1_001])
            #expect(try await stores[1].revocations(after: cursor).entries.isEmpty)
            try await stores[1].pruneRevocations(before: 1_001)
            #expect(try await stores[0].revocations(after: 0).entries.map(\.1) == [1_001])
        }
    }

    @Test func configurationFromURL() throws {
        let plain = try PostgresSessionStore.Configuration(url: "postgres://bff:p%40ss@127.0.0.1:5499/sessions")
        #expect(plain.host == "127.0.0.1")
        #expect(plain.port == 5499)
        #expect(plain.username == "bff")
        #expect(plain.password == "p@ss")
        #expect(plain.database == "sessions")
        #expect(plain.tls == .disable)  // loopback
        let remote = try PostgresSessionStore.Configuration(url: "postgresql://bff@db.internal/bff?schema=gw1&pool=8")
        #expect(remote.tls == .verifyFull)  // never plain text off the machine unless asked
        #expect(remote.schema == "gw1")
        #expect(remote.maximumConnections == 8)
        #expect(try PostgresSessionStore.Configuration(url: "postgres://u@h/d?sslmode=require").tls == .verifyFull)
        for hostile in [
            "http://bff@127.0.0.1/x", "postgres:///nohost", "postgres://127.0.0.1/nouser",
            "postgres://u@h/d?schema=x;drop", "postgres://u@h/d?schema=Public", "postgres://u@h/d?sslmode=allow",
            "postgres://u@h/d?pool=0", "postgres://u@h/d?options=-c%20x", "not a url",
        ] {
            #expect(throws: PostgresStoreError.self, "\(hostile)") {
                try PostgresSessionStore.Configuration(url: hostile)
            }
        }
    }

    @Test(.enabled(if: url != nil, "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func wrongPasswordIsAClearError() async throws {
        let url = try #require(Self.url)
        var configuration = try PostgresSessionStore.Configuration(url: url)
        configuration.password = "wrong-password"
        let error = await #expect(throws: PostgresStoreError.self) {
            try await PostgresSessionStore.open(configuration: configuration)
        }
        #expect(error.map { !$0.description.contains("wrong-password") } ?? false)
    }
}

/// How many sections run at once, and the most seen.
final class Overlap: Sendable {
    let state = Mutex((current: 0, most: 0))
}
