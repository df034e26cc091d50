import BFFCore
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Server-side sessions in PostgreSQL, shared by any number of gateway instances.
///
/// Holds only ciphertext plus index columns (like every store). What several instances need:
/// - migrations run under an advisory lock, so instances starting together do not race;
/// - ``exclusively(key:now:_:)`` holds the session's row lock (`SELECT … FOR UPDATE`) while a token
///   refresh runs, so exactly one instance refreshes and the others re-read its result instead of
///   replaying the old refresh token;
/// - cleanup deletes with `FOR UPDATE SKIP LOCKED`, so each expired row is removed (and its refresh
///   token revoked) by exactly one instance;
/// - lookups always read the table (no in-process cache), so a session ended on one instance is
///   gone on every instance at once.
public final class PostgresSessionStore: SessionStore, SharedRevocationFeed, Service {
    /// The connection pool in use. A pool that went on backing off after the database came back is
    /// replaced by a fresh one (see ``watchRecovery()``).
    var client: PostgresClient { pool.withLock { $0.client } }
    let logger: Logger
    let sessions: String
    let revocationTable: String
    let schema: String
    let configuration: Configuration
    let pool: Mutex<RunningPool>
    /// Records vouched for by the change subscription (see ``SessionCache``).
    let cache = Mutex(SessionCache())
    /// Pools replaced so far (tests, diagnostics).
    var poolReplacements: Int { pool.withLock { $0.generation } }

    /// A pool and the task that runs it. PostgresNIO wants `run()` in a task that outlives every
    /// query; the store must answer queries before the gateway's service group starts (migrations,
    /// `bff sessions`), so it owns that task and ends it in ``close()`` (or when it replaces the pool).
    struct RunningPool: Sendable {
        let client: PostgresClient
        let runner: Task<Void, Never>
        let started: AsyncStream<Void>
        var generation: Int
    }

    /// The schema version this code writes.
    public static let schemaVersion = 2

    /// Connects, creates or migrates the tables, and returns the store. Call ``close()`` (or run
    /// the store as a `Service`) to end it.
    public static func open(
        configuration: Configuration, logger: Logger = Logger(label: "bff.sessions.postgres")
    ) async throws -> PostgresSessionStore {
        // One direct connection first: a wrong password or an unreachable server is reported at
        // once with the server's reason, instead of the pool retrying quietly in the background.
        do {
            try await probe(configuration, logger: logger)
        } catch {
            throw PostgresStoreError(
                message: "cannot connect to the session database at \(configuration.host):\(configuration.port): "
                    + Self.describe(error))
        }
        let store = try PostgresSessionStore(configuration: configuration, logger: logger)
        await store.waitUntilRunning()
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw PostgresStoreError(message: "cannot prepare the session database: " + Self.describe(error))
        }
        return store
    }

    /// Opens and closes one direct connection (not through the pool).
    static func probe(_ configuration: Configuration, logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: try Self.connectionConfiguration(configuration), id: 0, logger: logger)
        try await connection.close()
    }

    init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.schema = configuration.schema
        self.sessions = "\(configuration.schema).bff_sessions"
        self.revocationTable = "\(configuration.schema).bff_revocations"
        self.pool = Mutex(Self.startPool(configuration: configuration, logger: logger, generation: 0))
    }

    static let columns = "key, sealed, subject, sid, issuer, created, renewed, expires, revocation"

    public func insert(_ record: SessionRecord) async throws {
        cache.withLock { $0.evict(record.key) }
        defer { cache.withLock { $0.evict(record.key) } }
        try await client.query(
            """
            INSERT INTO \(unescaped: sessions) (\(unescaped: Self.columns))
            VALUES (\(ByteBuffer(bytes: record.key)), \(ByteBuffer(bytes: record.sealed)), \(record.subject),
              \(record.idpSessionID), \(record.issuer), \(Int64(record.createdAt)), \(Int64(record.renewedAt)),
              \(Int64(record.expiresAt)), \(record.revocationSeal.map { ByteBuffer(bytes: $0) }))
            ON CONFLICT (key) DO UPDATE SET sealed = excluded.sealed, subject = excluded.subject,
              sid = excluded.sid, issuer = excluded.issuer, created = excluded.created,
              renewed = excluded.renewed, expires = excluded.expires, revocation = excluded.revocation
            """, logger: logger)
    }

    public func find(key: [UInt8], now: UnixTime) async throws -> SessionRecord? {
        let started = cache.withLock { $0.readStarted() }
        let record = try await Self.records(
            client.query(
                """
                SELECT \(unescaped: Self.columns) FROM \(unescaped: sessions)
                WHERE key = \(ByteBuffer(bytes: key)) AND expires > \(Int64(now))
                """, logger: logger)
        ).first
        if let started, let record { cache.withLock { $0.remember(record, ifUnchangedSince: started) } }
        return record
    }

    public func update(_ record: SessionRecord) async throws {
        cache.withLock { $0.evict(record.key) }
        defer { cache.withLock { $0.evict(record.key) } }
        try await client.query(
            """
            UPDATE \(unescaped: sessions) SET sealed = \(ByteBuffer(bytes: record.sealed)),
              subject = \(record.subject), sid = \(record.idpSessionID), issuer = \(record.issuer),
              created = \(Int64(record.createdAt)), renewed = \(Int64(record.renewedAt)),
              expires = \(Int64(record.expiresAt)), revocation = \(record.revocationSeal.map { ByteBuffer(bytes: $0) })
            WHERE key = \(ByteBuffer(bytes: record.key))
            """, logger: logger)
    }

    public func replace(_ record: SessionRecord, ifSealed expected: [UInt8]) async throws -> Bool {
        cache.withLock { $0.evict(record.key) }
        defer { cache.withLock { $0.evict(record.key) } }
        let rows = try await client.query(
            """
            UPDATE \(unescaped: sessions) SET sealed = \(ByteBuffer(bytes: record.sealed)),
              subject = \(record.subject), sid = \(record.idpSessionID), issuer = \(record.issuer),
              created = \(Int64(record.createdAt)), renewed = \(Int64(record.renewedAt)),
              expires = \(Int64(record.expiresAt)), revocation = \(record.revocationSeal.map { ByteBuffer(bytes: $0) })
            WHERE key = \(ByteBuffer(bytes: record.key)) AND sealed = \(ByteBuffer(bytes: expected))
            RETURNING key
            """, logger: logger
        ).collect()
        return !rows.isEmpty
    }

    /// Holds the session's row lock while `body` runs, across every instance sharing the database:
    /// a second caller waits for the first to commit, then sees its result.
    public func exclusively<T: Sendable>(
        key: [UInt8], now: UnixTime, _ body: @Sendable (SessionRecord?) async throws -> (SessionRecord?, T)
    ) async throws -> T {
        let sessions = self.sessions
        let logger = self.logger
        cache.withLock { $0.evict(key) }
        defer { cache.withLock { $0.evict(key) } }
        return try await client.withTransaction(logger: logger) { connection in
            // A refresh that hangs must not hold every other instance's requests forever.
            try await connection.query("SET LOCAL lock_timeout = '30s'", logger: logger)
            let current = try await Self.records(
                connection.query(
                    """
                    SELECT \(unescaped: Self.columns) FROM \(unescaped: sessions)
                    WHERE key = \(ByteBuffer(bytes: key)) AND expires > \(Int64(now)) FOR UPDATE
                    """, logger: logger)
            ).first
            let (replacement, result) = try await body(current)
            if let replacement {
                try await connection.query(
                    """
                    UPDATE \(unescaped: sessions) SET sealed = \(ByteBuffer(bytes: replacement.sealed)),
                      renewed = \(Int64(replacement.renewedAt)), expires = \(Int64(replacement.expiresAt)),
                      revocation = \(replacement.revocationSeal.map { ByteBuffer(bytes: $0) })
                    WHERE key = \(ByteBuffer(bytes: replacement.key))
                    """, logger: logger)
            }
            return result
        }
    }

    @discardableResult
    public func remove(key: [UInt8]) async throws -> SessionRecord? {
        cache.withLock { $0.evict(key) }
        defer { cache.withLock { $0.evict(key) } }
        return try await Self.records(
            client.query(
                """
                DELETE FROM \(unescaped: sessions) WHERE key = \(ByteBuffer(bytes: key))
                RETURNING \(unescaped: Self.columns)
                """, logger: logger)
        ).first
    }

    public func removeAll(issuer: String, idpSessionID: String?, subject: String?) async throws -> [SessionRecord] {
        guard idpSessionID != nil || subject != nil else { return [] }
        let query: PostgresQuery
        switch (idpSessionID, subject) {
        case (let sid?, let subject?):
            query = """
                DELETE FROM \(unescaped: sessions) WHERE issuer = \(issuer) AND sid = \(sid) AND subject = \(subject)
                RETURNING \(unescaped: Self.columns)
                """
        case (let sid?, nil):
            query = """
                DELETE FROM \(unescaped: sessions) WHERE issuer = \(issuer) AND sid = \(sid)
                RETURNING \(unescaped: Self.columns)
                """
        case (nil, let subject?):
            query = """
                DELETE FROM \(unescaped: sessions) WHERE issuer = \(issuer) AND subject = \(subject)
                RETURNING \(unescaped: Self.columns)
                """
        case (nil, nil):
            return []
        }
        // Which keys go is only known afterwards: nothing is vouched for meanwhile.
        cache.withLock { $0.evictAll() }
        defer { cache.withLock { $0.evictAll() } }
        return try await Self.records(client.query(query, logger: logger))
    }

    /// Rows deleted per cleanup statement.
    public static let cleanupBatchSize = 500

    /// Removes expired rows in batches. Rows another instance is deleting (or refreshing) are
    /// skipped, so with several instances each row is returned to exactly one of them.
    public func removeExpired(now: UnixTime) async throws -> [SessionRecord] {
        var removed: [SessionRecord] = []
        while true {
            let batch = try await Self.records(
                client.query(
                    """
                    DELETE FROM \(unescaped: sessions) WHERE key IN (
                      SELECT key FROM \(unescaped: sessions) WHERE expires <= \(Int64(now))
                      LIMIT \(Self.cleanupBatchSize) FOR UPDATE SKIP LOCKED)
                    RETURNING \(unescaped: Self.columns)
                    """, logger: logger))
            removed += batch
            if batch.count < Self.cleanupBatchSize { return removed }
        }
    }

    public func ping() async throws { try await client.query("SELECT 1", logger: logger) }

    public func list(issuer: String?, idpSessionID: String?, subject: String?, limit: Int) async throws
        -> [SessionRecord]
    {
        var bindings = PostgresBindings()
        var conditions: [String] = []
        for (column, value) in [("issuer", issuer), ("sid", idpSessionID), ("subject", subject)] {
            if let value {
                bindings.append(value)
                conditions.append("\(column) = $\(bindings.count)")
            }
        }
        bindings.append(Int64(max(0, limit)))
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return try await Self.records(
            client.query(
                PostgresQuery(
                    unsafeSQL:
                        "SELECT \(Self.columns) FROM \(sessions)\(filter) ORDER BY created, key LIMIT $\(bindings.count)",
                    binds: bindings), logger: logger))
    }

    static func records(_ rows: PostgresRowSequence) async throws -> [SessionRecord] {
        var records: [SessionRecord] = []
        for try await (key, sealed, subject, sid, issuer, created, renewed, expires, revocation) in rows.decode(
            (ByteBuffer, ByteBuffer, String, String?, String, Int64, Int64, Int64, ByteBuffer?).self)
        {
            records.append(
                SessionRecord(
                    key: Array(key.readableBytesView), sealed: Array(sealed.readableBytesView), subject: subject,
                    idpSessionID: sid, issuer: issuer, createdAt: UnixTime(created), renewedAt: UnixTime(renewed),
                    expiresAt: UnixTime(expires), revocationSeal: revocation.map { Array($0.readableBytesView) }))
        }
        return records
    }
}

/// A PostgreSQL store failure that is not a driver error.
public struct PostgresStoreError: Error, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// The message.
    public var description: String { message }
}
