import BFFCore
import BFFSessionStorePostgres
import BFFSessionStoreSQLite
import Foundation
import Testing

@testable import BFFGateway

@Suite("bff sessions")
struct SessionsCommandTests {
    static func makeDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-admin-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// A gateway configuration with `session` (a YAML flow mapping) in `directory`; returns its path.
    static func writeConfig(in directory: String, session: String) throws -> String {
        let config = directory + "/bff.yaml"
        try """
        oidc: {issuer: "https://idp.example.com", clientId: bff, clientSecret: s}
        session: \(session)
        keys: [{id: k1, secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    @Test func revokeBySubjectSidAndExpired() async throws {
        let directory = try Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try Self.writeConfig(
            in: directory, session: "{store: sqlite, sqlite: {path: \"\(directory)/sessions.sqlite\"}}")
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

        let list = try SessionsCommand.List.parse(["--config", config, "--sub", "alice"])
        try await list.run()
        let bySub = try SessionsCommand.Revoke.parse(["--config", config, "--sub", "alice"])
        try await bySub.run()
        let bySid = try SessionsCommand.Revoke.parse(["--config", config, "--sid", "s3"])
        try await bySid.run()
        let expired = try SessionsCommand.Revoke.parse(["--config", config, "--all-expired"])
        try await expired.run()

        let reopened = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let remaining = try await reopened.count()
        try await reopened.close()
        #expect(remaining == 0)
    }

    /// With `frontends:`, `--frontend` acts on that frontend's sessions only (its store keys carry
    /// its tag), and without it every frontend's, each with its own issuer.
    @Test func frontendSelectsOneFrontendsSessions() async throws {
        let directory = try Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/bff.yaml"
        try """
        oidc: {issuer: "https://idp.example.com", clientId: bff, clientSecret: s}
        session: {store: sqlite, sqlite: {path: "\(directory)/sessions.sqlite"}}
        keys: [{id: k1, secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]
        frontends:
          - {name: shop, match: {pathPrefix: /shop}}
          - {name: docs, match: {pathPrefix: /docs}}
          - {name: admin, match: {pathPrefix: /admin}, oidc: {issuer: "https://staff.example.com"}}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let store = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
        let now = SystemTimeSource().now
        func record(_ frontend: String, _ tag: UInt8, sub: String, issuer: String = "https://idp.example.com")
            -> SessionRecord
        {
            SessionRecord(
                key: SessionManager.frontendTag(frontend) + Array(repeating: tag, count: 28), sealed: [tag],
                subject: sub, idpSessionID: "s\(tag)", issuer: issuer, createdAt: now, renewedAt: now,
                expiresAt: now + 600)
        }
        try await store.insert(record("shop", 1, sub: "alice"))
        try await store.insert(record("docs", 2, sub: "alice"))
        try await store.insert(record("docs", 3, sub: "bob"))
        try await store.insert(record("admin", 4, sub: "alice", issuer: "https://staff.example.com"))
        try await store.insert(record("shop", 5, sub: "bob"))
        try await store.close()
        func remaining() async throws -> [UInt8] {
            let reopened = try await SQLiteSessionStore.open(path: directory + "/sessions.sqlite")
            let records = try await reopened.list(issuer: nil, idpSessionID: nil, subject: nil, limit: 100)
            try await reopened.close()
            return records.map { $0.sealed[0] }.sorted()
        }
        try await SessionsCommand.List.parse(["--config", config, "--frontend", "docs"]).run()
        try await SessionsCommand.Revoke.parse(["--config", config, "--sub", "alice", "--frontend", "shop"]).run()
        #expect(try await remaining() == [2, 3, 4, 5], "only shop's alice")
        try await SessionsCommand.Revoke.parse(["--config", config, "--sub", "alice"]).run()
        #expect(try await remaining() == [3, 5], "every frontend's alice, each of its own issuer")
        await #expect(throws: (any Error).self) {
            try await SessionsCommand.Revoke.parse(["--config", config, "--sub", "bob", "--frontend", "nope"]).run()
        }
        #expect(try await remaining() == [3, 5])
    }

    @Test(
        .enabled(
            if: ProcessInfo.processInfo.environment["BFF_TEST_POSTGRES_URL"] != nil,
            "set BFF_TEST_POSTGRES_URL (scripts/postgres/start.sh)"))
    func postgresListAndRevoke() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["BFF_TEST_POSTGRES_URL"])
        let schema = "t_cmd_" + SystemSecureRandom().bytes(5).map { String($0, radix: 16) }.joined()
        let directory = try Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try Self.writeConfig(
            in: directory, session: "{store: postgres, postgres: {url: \"\(url)?schema=\(schema)\"}}")
        var configuration = try PostgresSessionStore.Configuration(url: url)
        configuration.schema = schema
        let store = try await PostgresSessionStore.open(configuration: configuration)
        let now = SystemTimeSource().now
        func record(_ tag: UInt8, sub: String, sid: String, expires: UnixTime) -> SessionRecord {
            SessionRecord(
                key: Array(repeating: tag, count: 32), sealed: [tag], subject: sub, idpSessionID: sid,
                issuer: "https://idp.example.com", createdAt: now, renewedAt: now, expiresAt: expires)
        }
        do {
            try await store.insert(record(1, sub: "alice", sid: "s1", expires: now + 600))
            try await store.insert(record(2, sub: "alice", sid: "s2", expires: now + 600))
            try await store.insert(record(3, sub: "bob", sid: "s3", expires: now + 600))
            try await store.insert(record(4, sub: "carol", sid: "s4", expires: now - 1))
            try await store.insert(record(5, sub: "dana", sid: "s5", expires: now + 600))
            try await SessionsCommand.List.parse(["--config", config]).run()
            try await SessionsCommand.Revoke.parse(["--config", config, "--sub", "alice"]).run()
            #expect(try await store.count() == 3)
            try await SessionsCommand.Revoke.parse(["--config", config, "--sid", "s3"]).run()
            try await SessionsCommand.Revoke.parse(["--config", config, "--all-expired"]).run()
            let remaining = try await store.list(issuer: nil, idpSessionID: nil, subject: nil, limit: 10)
            #expect(remaining.map(\.subject) == ["dana"])
        } catch {
            try? await store.dropSchema()
            await store.close()
            throw error
        }
        try await store.dropSchema()
        await store.close()
    }

    @Test func revokeNeedsExactlyOneSelector() {
        #expect(throws: (any Error).self) { try SessionsCommand.Revoke.parse(["--config", "x"]) }
        #expect(throws: (any Error).self) {
            try SessionsCommand.Revoke.parse(["--config", "x", "--sub", "a", "--sid", "b"])
        }
    }
}

@Suite("One gateway per SQLite file")
struct SQLiteOwnerLockTests {
    @Test func aSecondGatewayOnTheSameFileIsRefusedWithAFix() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-lock-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = directory + "/sessions.sqlite"
        let first = try SQLiteOwnerLock.acquire(databasePath: database)
        do {
            _ = try SQLiteOwnerLock.acquire(databasePath: database)
            Issue.record("a second gateway got the lock")
        } catch let error as ProblemList {
            #expect(error.problems.map(\.path) == ["session.sqlite.path"])
            #expect(error.description.contains("postgres"))
        }
        let other = try SQLiteOwnerLock.acquire(databasePath: directory + "/other.sqlite")
        other.release()
        first.release()
        let again = try SQLiteOwnerLock.acquire(databasePath: database)
        again.release()
    }
}

@Suite("bff sessions revoke against a live IdP")
struct SessionsRevokeAtIdPTests {
    /// Ending sessions from the command line revokes their refresh tokens at the IdP, as a logout
    /// does: a session created by the gateway (SQLite store, dev IdP) is revoked with
    /// `bff sessions revoke --sub`, and the IdP counts the revocation.
    @Test func revokeBySubjectRevokesTheRefreshTokenAtTheIdP() async throws {
        let directory = try SessionsCommandTests.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sessions.sqlite"
        let store = try await SQLiteSessionStore.open(path: path)
        let key = KeyRing.Key(id: "k1", secret: Array(repeating: 1, count: 32))
        try await TestEnvironment.run(
            keyRing: try KeyRing(keys: [key]), store: store, configure: { $0.session.store = .sqlite }
        ) { env, browser in
            try await env.login(browser)
            let config = directory + "/bff.yaml"
            try """
            oidc: {issuer: "\(env.issuer)", clientId: bff-demo, clientSecret: "\(DemoSetup.clientSecret)"}
            session: {store: sqlite, sqlite: {path: "\(path)"}}
            keys: [{id: k1, secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]
            """.write(toFile: config, atomically: true, encoding: .utf8)
            #expect(await env.idp.statistics().refreshTokensRevoked == 0)
            let revoke = try SessionsCommand.Revoke.parse(["--config", config, "--sub", "alice-7f3b"])
            try await revoke.run()
            #expect(await env.idp.statistics().refreshTokensRevoked == 1, "revoked at the IdP")
            let ended = try await eventually(until: { $0 == 401 }) { try await env.user(browser).status }
            #expect(ended == 401, "the session ended (within the SQLite confirmation window)")
        }
        try await store.close()
    }
}
