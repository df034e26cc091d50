import BFFCore
import Foundation
import Synchronization
import Testing

@testable import BFFSessionStoreSQLite

@Suite("SQLite store: write ordering and file modes")
struct SQLiteHardeningTests {
    func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("bff-sqlite-\(UUID().uuidString)").path
    }

    let record = SessionRecord(
        key: Array(repeating: 3, count: 32), sealed: [1, 2, 3], subject: "alice", idpSessionID: "s1",
        issuer: "https://idp.test", createdAt: 10, renewedAt: 10, expiresAt: 1_000)

    /// A refresh (`replace`) racing a logout (`remove`): the UPDATE lands first, the DELETE runs
    /// before the refresh records its result as confirmed. The deleted session must not be served
    /// from the confirmation window afterwards.
    @Test(arguments: ["replace", "insert"])
    func aWriteRacingADeleteNeverConfirmsTheDeletedRecord(write: String) async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let record = self.record
        do {
            try await store.insert(record)
            var refreshed = record
            refreshed.sealed = [4, 5, 6]
            // The logout runs exactly between the write and its confirmation.
            let deleted = Mutex(false)
            store.beforeConfirmingWrite.withLock { hook in
                hook = {
                    guard !deleted.withLock({ $0 }) else { return }
                    deleted.withLock { $0 = true }
                    _ = try? await store.remove(key: record.key)
                }
            }
            if write == "replace" {
                #expect(try await store.replace(refreshed, ifSealed: record.sealed))
            } else {
                try await store.insert(refreshed)
            }
            store.beforeConfirmingWrite.withLock { $0 = nil }
            #expect(deleted.withLock { $0 }, "the delete ran in between")
            switch store.findImmediately(key: record.key, now: 20) {
            case .found: Issue.record("the deleted session is served from the confirmation window")
            case .absent, .unknown: break
            }
            #expect(try await store.find(key: record.key, now: 20) == nil, "deleted in the file")
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    /// The database and its journal files hold `sub` and `sid` in the clear: 0600, even when the
    /// folder and an older, world-readable database already exist.
    @Test func databaseAndJournalFilesArePrivateEvenInAnExistingFolder() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let manager = FileManager.default
        try manager.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let path = directory + "/sessions.sqlite"
        // First open in a fresh file of an existing folder.
        let first = try await SQLiteSessionStore.open(path: path)
        try await first.insert(record)
        for file in [path, path + "-wal", path + "-shm"] {
            let mode = try manager.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file): \(String(mode ?? 0, radix: 8))")
        }
        try await first.close()
        // An older gateway left the files world-readable: reopening fixes them.
        for file in [path, path + "-wal", path + "-shm"] where manager.fileExists(atPath: file) {
            try manager.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        }
        let second = try await SQLiteSessionStore.open(path: path)
        #expect(try await second.find(key: record.key, now: 20) == record)
        for file in [path, path + "-wal", path + "-shm"] where manager.fileExists(atPath: file) {
            let mode = try manager.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file) after reopening: \(String(mode ?? 0, radix: 8))")
        }
        try await second.close()
    }
}
