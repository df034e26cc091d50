// Session-store benchmark: 1,000,000 sessions in SQLite and in PostgreSQL — lookup latency,
// revoke-by-subject, cleanup of 100,000 expired sessions while lookups continue — and the memory
// store's RSS per session. Benchmarks/stores/run.sh starts a throw-away PostgreSQL and runs it.
//
//   .build/release/bff-store-bench [--sessions 1000000] [--store sqlite|postgres|memory|all]
//                                  [--postgres-url postgres://…]   (default: $BFF_BENCH_POSTGRES_URL)
import BFFCore
import BFFSessionStorePostgres
import BFFSessionStoreSQLite
import Foundation
import Synchronization

let arguments = CommandLine.arguments
let which = arguments.firstIndex(of: "--store").map { arguments[$0 + 1] } ?? "all"
let postgresURL =
    arguments.firstIndex(of: "--postgres-url").map { arguments[$0 + 1] }
    ?? ProcessInfo.processInfo.environment["BFF_BENCH_POSTGRES_URL"]
let total = arguments.firstIndex(of: "--sessions").flatMap { Int(arguments[$0 + 1]) } ?? 1_000_000
let expiredCount = total / 10
let now: UnixTime = 1_900_000_000
// A realistic sealed session: claims plus a ~900-byte access token, a ~900-byte ID token and a refresh token.
let sealedSize = arguments.firstIndex(of: "--sealed-bytes").flatMap { Int(arguments[$0 + 1]) } ?? 2000

func key(_ index: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 32)
    var value = UInt64(index) &* 0x9E37_79B9_7F4A_7C15
    for offset in 0..<8 {
        bytes[offset] = UInt8(truncatingIfNeeded: value)
        value >>= 8
    }
    bytes[31] = UInt8(truncatingIfNeeded: index)
    return bytes
}

func record(_ index: Int) -> SessionRecord {
    let expired = index < expiredCount
    return SessionRecord(
        key: key(index), sealed: [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: sealedSize),
        subject: "user-\(index % (total / 10))", idpSessionID: "sid-\(index)", issuer: "https://idp.example.com",
        createdAt: now - 100, renewedAt: now - 100, expiresAt: expired ? now - 1 : now + 3600,
        revocationSeal: [UInt8](repeating: 7, count: 80))
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func ms(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func format(_ value: Double) -> String { String(format: "%.3f", value) }

/// What the benchmark needs beyond the protocol.
protocol BenchmarkedStore: SessionStore {
    func insert(batch records: [SessionRecord]) async throws
}
extension SQLiteSessionStore: BenchmarkedStore {}
extension PostgresSessionStore: BenchmarkedStore {}

let clock = ContinuousClock()

/// Set when the cleanup finished.
final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}

func run(_ name: String, store: any BenchmarkedStore) async throws {
    print("\(name) == \(name): \(total) sessions of \(sealedSize) sealed bytes")

    // Fill.
    let fillStart = clock.now
    var index = 0
    while index < total {
        let end = min(total, index + 10_000)
        try await store.insert(batch: (index..<end).map(record))
        index = end
    }
    print("\(name) filled \(total) sessions in \(format(ms(clock.now - fillStart) / 1000)) s")

    // Lookups by ticket (random current sessions).
    var lookups: [Double] = []
    for _ in 0..<20_000 {
        let target = Int.random(in: expiredCount..<total)
        let started = clock.now
        let found = try await store.find(key: key(target), now: now)
        lookups.append(ms(clock.now - started))
        precondition(found != nil)
    }
    print(
        "\(name) lookup: p50 \(format(percentile(lookups, 0.5))) ms, p99 \(format(percentile(lookups, 0.99))) ms (target p99 <= 2 ms)"
    )

    // Revoke by subject (each subject has 10 sessions).
    var revokes: [Double] = []
    for round in 0..<50 {
        let subject = "user-\(round * 997 % (total / 10))"
        let started = clock.now
        _ = try await store.removeAll(issuer: "https://idp.example.com", idpSessionID: nil, subject: subject)
        revokes.append(ms(clock.now - started))
    }
    print(
        "\(name) revoke by sub: p50 \(format(percentile(revokes, 0.5))) ms, max \(format(revokes.max() ?? 0)) ms (target <= 20 ms)"
    )

    // Cleanup of the expired sessions while lookups run.
    let cleanupStart = clock.now
    let cleanupDone = Flag()
    let (removed, duringCleanup) = try await withThrowingTaskGroup(of: (Int, [Double]).self) { group in
        group.addTask {
            let removed = try await store.removeExpired(now: now).count
            cleanupDone.value.store(true, ordering: .releasing)
            return (removed, [])
        }
        group.addTask {
            var samples: [Double] = []
            while !cleanupDone.value.load(ordering: .acquiring) {
                let target = Int.random(in: expiredCount..<total)
                let started = clock.now
                _ = try await store.find(key: key(target), now: now)
                samples.append(ms(clock.now - started))
            }
            return (0, samples)
        }
        var removed = 0
        var samples: [Double] = []
        for try await (count, values) in group {
            removed += count
            samples += values
        }
        return (removed, samples)
    }
    print(
        "\(name) cleanup: removed \(removed) expired sessions in \(format(ms(clock.now - cleanupStart) / 1000)) s; lookups during it: "
            + "\(duringCleanup.count), p99 \(format(percentile(duringCleanup.isEmpty ? [0] : duringCleanup, 0.99))) ms (target p99 <= 5 ms)"
    )
}

if which == "sqlite" || which == "all" {
    let directory = "/tmp/swift-bff-store-bench"
    try? FileManager.default.removeItem(atPath: directory)
    let store = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
    try await run("sqlite", store: store)
    try await store.close()
    try? FileManager.default.removeItem(atPath: directory)
}
if which == "postgres" || which == "all" {
    guard let postgresURL else {
        print("postgres: skipped (give --postgres-url or BFF_BENCH_POSTGRES_URL; Benchmarks/stores/run.sh does)")
        exit(2)
    }
    var configuration = try PostgresSessionStore.Configuration(url: postgresURL)
    configuration.schema = "bff_bench"
    configuration.maximumConnections = 8
    let store = try await PostgresSessionStore.open(configuration: configuration)
    try await store.dropSchema()
    await store.close()
    let fresh = try await PostgresSessionStore.open(configuration: configuration)
    try await run("postgres", store: fresh)
    try await fresh.dropSchema()
    await fresh.close()
}
if which == "memory" || which == "all" {
    // Memory store: resident memory per session against the sealed size.
    func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
    }
    let memory = MemorySessionStore()
    let memoryCount = 200_000
    let before = residentBytes()
    for index in 0..<memoryCount { await memory.insert(record(total + index)) }
    let after = residentBytes()
    let perSession = Double(after - before) / Double(memoryCount)
    let sealedBytes = Double(sealedSize + 80 + 32)
    print(
        "memory store: \(format(perSession)) bytes RSS per session for \(Int(sealedBytes)) bytes sealed "
            + "(ratio \(format(perSession / sealedBytes)), target <= 1.5)")
}
