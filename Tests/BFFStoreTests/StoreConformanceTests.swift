import BFFCore
import BFFSessionStoreSQLite
import BFFTesting
import Foundation
import Testing

@Suite("Session store conformance")
struct StoreConformanceTests {
    @Test(arguments: SessionStoreConformance.Check.allCases)
    func memory(_ check: SessionStoreConformance.Check) async throws {
        let store = MemorySessionStore()
        try await SessionStoreConformance.run(check, store: store) {
            // The memory store's "raw" content is its records' bytes.
            let records = try await store.removeExpired(now: .max)
            for record in records { try await store.insert(record) }
            return records.flatMap { $0.key + $0.sealed + Array($0.subject.utf8) + Array(($0.idpSessionID ?? "").utf8) }
        }
    }

    @Test(arguments: SessionStoreConformance.Check.allCases)
    func sqlite(_ check: SessionStoreConformance.Check) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-sqlite-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sessions.sqlite"
        let store = try await SQLiteSessionStore.open(path: path)
        do {
            try await SessionStoreConformance.run(check, store: store) {
                // Everything on disk: the database and its write-ahead log.
                ["", "-wal", "-shm"].compactMap { FileManager.default.contents(atPath: path + $0) }.flatMap {
                    Array($0)
                }
            }
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    @Test func sqliteSurvivesReopening() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-sqlite-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sessions.sqlite"
        let record = SessionRecord(
            key: Array(repeating: 1, count: 32), sealed: [1, 2, 3], subject: "alice", idpSessionID: nil,
            issuer: "https://idp.test", createdAt: 10, renewedAt: 10, expiresAt: 1_000)
        let first = try await SQLiteSessionStore.open(path: path)
        try await first.insert(record)
        try await first.close()
        let second = try await SQLiteSessionStore.open(path: path)
        let found = try await second.find(key: record.key, now: 20)
        try await second.close()
        #expect(found == record)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
    }
}
