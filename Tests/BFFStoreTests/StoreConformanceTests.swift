import BFFCore
import BFFTesting
import Foundation
import Testing

@testable import BFFSessionStoreSQLite

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

    /// What the SQLite store answers without reading the file (the gateway's fast path): only
    /// records it read or wrote itself within the confirmation window, never one a write touched since.
    @Test func sqliteImmediateLookupsOnlyVouchForFreshlyConfirmedRecords() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-sqlite-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let record = SessionRecord(
            key: Array(repeating: 7, count: 32), sealed: [1, 2, 3], subject: "alice", idpSessionID: "s1",
            issuer: "https://idp.test", createdAt: 10, renewedAt: 10, expiresAt: 1_000)
        func immediate(now: UnixTime = 20) -> String {
            switch store.findImmediately(key: record.key, now: now) {
            case .found: "found"
            case .absent: "absent"
            case .unknown: "unknown"
            }
        }
        do {
            #expect(immediate() == "unknown", "never read: no guess")
            try await store.insert(record)
            #expect(immediate() == "found")
            #expect(immediate(now: 1_000) == "unknown", "expired")
            try await store.remove(key: record.key)
            #expect(immediate() == "unknown", "a delete is never answered from memory")
            // A read that raced a write does not vouch for what it read.
            try await store.insert(record)
            let before = store.writeSequence
            try await store.remove(key: record.key)
            store.remember(record, ifUnchangedSince: before)
            #expect(immediate() == "unknown")
            // A plain read vouches for its result, for the confirmation window only.
            try await store.insert(record)
            try await store.update(record)
            #expect(immediate() == "unknown", "after an update the next read decides")
            #expect(try await store.find(key: record.key, now: 20) == record)
            #expect(immediate() == "found")
            _ = try await store.removeAll(issuer: "https://idp.test", idpSessionID: "other", subject: nil)
            #expect(immediate() == "unknown", "bulk deletes forget everything")
            #expect(try await store.find(key: record.key, now: 20) == record)
            var changed = record
            changed.sealed = [9]
            #expect(try await store.replace(changed, ifSealed: [4, 5, 6]) == false)
            #expect(immediate() == "unknown", "a lost compare-and-replace forgets")
            #expect(try await store.find(key: record.key, now: 20) == record)
            try await Task.sleep(for: SQLiteSessionStore.confirmationWindow + .milliseconds(100))
            #expect(immediate() == "unknown", "the window passed")
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }
}
