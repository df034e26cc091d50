import BFFCore
import BFFSessionStoreSQLite
import Foundation
import Testing

@testable import BFFGateway

@Suite("bff sessions")
struct SessionsCommandTests {
    @Test func revokeBySubjectSidAndExpired() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-admin-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config = directory + "/bff.yaml"
        try """
        oidc:
          issuer: "https://idp.example.com"
          clientId: bff
          clientSecret: s
        session:
          store: sqlite
          sqlite: {path: "\(directory)/sessions.sqlite"}
        keys:
          - id: k1
            secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let store = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let now = SystemTimeSource().now
        func record(_ tag: UInt8, sub: String, sid: String, expires: UnixTime) -> SessionRecord {
            SessionRecord(
                key: Array(repeating: tag, count: 32), sealed: [tag], subject: sub, idpSessionID: sid,
                issuer: "https://idp.example.com", createdAt: now, renewedAt: now, expiresAt: expires)
        }
        try await store.insert(record(1, sub: "alice", sid: "s1", expires: now + 600))
        try await store.insert(record(2, sub: "alice", sid: "s2", expires: now + 600))
        try await store.insert(record(3, sub: "bob", sid: "s3", expires: now + 600))
        try await store.insert(record(4, sub: "carol", sid: "s4", expires: now - 1))
        try await store.close()

        var list = try SessionsCommand.List.parse(["--config", config, "--sub", "alice"])
        try await list.run()
        var bySub = try SessionsCommand.Revoke.parse(["--config", config, "--sub", "alice"])
        try await bySub.run()
        var bySid = try SessionsCommand.Revoke.parse(["--config", config, "--sid", "s3"])
        try await bySid.run()
        var expired = try SessionsCommand.Revoke.parse(["--config", config, "--all-expired"])
        try await expired.run()

        let reopened = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let remaining = try await reopened.count()
        try await reopened.close()
        #expect(remaining == 0)
    }

    @Test func revokeNeedsExactlyOneSelector() {
        #expect(throws: (any Error).self) { try SessionsCommand.Revoke.parse(["--config", "x"]) }
        #expect(throws: (any Error).self) {
            try SessionsCommand.Revoke.parse(["--config", "x", "--sub", "a", "--sid", "b"])
        }
    }
}
