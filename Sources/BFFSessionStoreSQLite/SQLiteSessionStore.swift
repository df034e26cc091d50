import BFFCore
import Foundation
import Logging
import NIOCore
import SQLiteNIO
import ServiceLifecycle
import Synchronization

/// Server-side sessions in a SQLite file: ciphertext plus index columns, WAL journal, and a
/// cleanup loop (run it as a `Service`). Sessions survive a gateway restart.
///
/// Three connections, each serialised by an actor: one writes (SQLite allows one writer at a time
/// anyway), one reads — in WAL mode readers never wait for the writer, so lookups stay fast while a
/// large cleanup or revocation runs — and one copies the write-ahead log back into the database
/// (a passive checkpoint after every ``checkpointEvery`` writes), so no write pays for a checkpoint.
public final class SQLiteSessionStore: SessionStore, ImmediateSessionLookup, Service {
    let connection: SQLiteConnection
    let executor: StatementQueue
    let readConnection: SQLiteConnection
    let reader: StatementQueue
    let checkpointConnection: SQLiteConnection
    let checkpointer: StatementQueue
    let logger: Logger
    /// Writes since the last checkpoint, and whether one is running.
    private let checkpointState = Mutex((writes: 0, running: false))
    /// Writes between passive checkpoints.
    static let checkpointEvery = 256
    /// Records this store read or wrote within ``confirmationWindow``, for lookups that must not
    /// wait (see ``findImmediately(key:now:)``).
    let confirmed = Mutex(ConfirmedRecords())
    /// How long a record read or written by this store answers lookups without reading the file.
    /// The gateway's own writes (logout, back-channel, refresh, cleanup) take effect at once; a
    /// write by another process (`bff sessions revoke`) within this window.
    public static let confirmationWindow: Duration = .seconds(1)
    static let confirmedCapacity = 4096
    /// Runs between a write and recording its result as confirmed (tests force interleavings here).
    let beforeConfirmingWrite = Mutex<(@Sendable () async -> Void)?>(nil)

    /// The schema version this code writes.
    public static let schemaVersion = 3

    /// Opens (and creates or migrates) the database at `path`; its folder is created with mode 0700,
    /// and the database and its `-wal`/`-shm` files are made private (0600) even when they or the
    /// folder already existed: they hold `sub` and `sid` in the clear.
    public static func open(path: String, logger: Logger = Logger(label: "bff.sessions.sqlite")) async throws
        -> SQLiteSessionStore
    {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        try makePrivate(path)
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        do {
            try await StatementQueue(connection: connection).run("PRAGMA journal_mode=WAL")
            // SQLite gives the journal files the database's mode; files left by an earlier version are fixed here.
            try makePrivate(path)
        } catch {
            try? await connection.close()
            throw error
        }
        var opened: [SQLiteConnection] = [connection]
        do {
            let readConnection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            opened.append(readConnection)
            let checkpointConnection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            opened.append(checkpointConnection)
            let store = SQLiteSessionStore(
                connection: connection, readConnection: readConnection, checkpointConnection: checkpointConnection,
                logger: logger)
            try await store.migrate()
            return store
        } catch {
            for connection in opened { try? await connection.close() }
            throw error
        }
    }

    /// Creates the database file with mode 0600 if it does not exist, and sets 0600 on it and on
    /// its `-wal`/`-shm` files where they exist.
    static func makePrivate(_ path: String) throws {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            guard manager.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw SQLiteStoreError(message: "cannot create the session database \(path)")
            }
        }
        for file in [path, path + "-wal", path + "-shm"] where manager.fileExists(atPath: file) {
            try manager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        }
    }

    init(
        connection: SQLiteConnection, readConnection: SQLiteConnection, checkpointConnection: SQLiteConnection,
        logger: Logger
    ) {
        self.connection = connection
        self.executor = StatementQueue(connection: connection)
        self.readConnection = readConnection
        self.reader = StatementQueue(connection: readConnection)
        self.checkpointConnection = checkpointConnection
        self.checkpointer = StatementQueue(connection: checkpointConnection)
        self.logger = logger
    }

    /// Counts a write; every ``checkpointEvery`` writes, starts a passive checkpoint on its own
    /// connection (it never blocks readers or the writer) unless one is still running.
    func wrote(_ count: Int = 1) {
        let start = checkpointState.withLock { state -> Bool in
            state.writes += count
            guard state.writes >= Self.checkpointEvery, !state.running else { return false }
            state.writes = 0
            state.running = true
            return true
        }
        guard start else { return }
        let checkpointer = self.checkpointer
        let state = self
        // Fire-and-forget on purpose: the write that triggered it must not wait for it. At most one
        // runs at a time (the `running` flag), and close() waits for the checkpoint queue.
        Task {  // justified: the triggering write must not wait; one at a time; close() drains the queue
            _ = try? await checkpointer.run("PRAGMA wal_checkpoint(PASSIVE)")
            state.checkpointState.withLock { $0.running = false }
        }
    }

    func migrate() async throws {
        _ = try await executor.run("PRAGMA synchronous=NORMAL")
        // Checkpoints normally run on their own connection (see wrote()); this is only a backstop.
        _ = try await executor.run("PRAGMA wal_autocheckpoint=20000")
        for queue in [executor, reader, checkpointer] { _ = try await queue.run("PRAGMA busy_timeout=5000") }
        let version = try await executor.run("PRAGMA user_version").first?.column("user_version")?.integer ?? 0
        if version > Self.schemaVersion {
            throw SQLiteStoreError(
                message: "the session database has schema \(version), newer than this gateway's \(Self.schemaVersion)")
        }
        if version < 1 {
            for statement in [
                """
                CREATE TABLE IF NOT EXISTS bff_sessions (
                  key BLOB PRIMARY KEY, sealed BLOB NOT NULL, subject TEXT NOT NULL, sid TEXT, issuer TEXT NOT NULL,
                  created INTEGER NOT NULL, renewed INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID
                """,
                "CREATE INDEX IF NOT EXISTS bff_sessions_sid ON bff_sessions (issuer, sid)",
                "CREATE INDEX IF NOT EXISTS bff_sessions_subject ON bff_sessions (issuer, subject)",
                "CREATE INDEX IF NOT EXISTS bff_sessions_expires ON bff_sessions (expires)",
                "PRAGMA user_version = 1",
            ] {
                _ = try await executor.run(statement)
            }
        }
        if version < 2 {
            _ = try await executor.run("ALTER TABLE bff_sessions ADD COLUMN revocation BLOB")
            _ = try await executor.run("PRAGMA user_version = 2")
        }
        if version < 3 {
            // Revocation records of cookie mode (see SQLiteSessionStore+Revocations.swift).
            _ = try await executor.run(
                """
                CREATE TABLE IF NOT EXISTS bff_revocations (
                  id INTEGER PRIMARY KEY AUTOINCREMENT, entry BLOB NOT NULL, revoked_at INTEGER NOT NULL)
                """)
            _ = try await executor.run(
                "CREATE INDEX IF NOT EXISTS bff_revocations_revoked_at ON bff_revocations (revoked_at)")
            _ = try await executor.run("PRAGMA user_version = 3")
        }
    }

    public func insert(_ record: SessionRecord) async throws {
        defer { wrote() }
        let sequence = forget([record.key])
        _ = try await executor.run(
            "INSERT OR REPLACE INTO bff_sessions (key, sealed, subject, sid, issuer, created, renewed, expires, revocation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            Self.binds(record))
        await confirmWrite(record, sequence: sequence)
    }

    public func find(key: [UInt8], now: UnixTime) async throws -> SessionRecord? {
        let sequence = confirmed.withLock { $0.sequence }
        let rows = try await reader.run(
            "SELECT key, sealed, subject, sid, issuer, created, renewed, expires, revocation FROM bff_sessions WHERE key = ? AND expires > ?",
            [.blob(ByteBuffer(bytes: key)), .integer(Int(now))])
        let record = rows.first.flatMap(Self.record)
        if let record { remember(record, ifUnchangedSince: sequence) }
        return record
    }

    public func update(_ record: SessionRecord) async throws {
        defer { wrote() }
        forget([record.key])
        _ = try await executor.run(
            "UPDATE bff_sessions SET sealed = ?, subject = ?, sid = ?, issuer = ?, created = ?, renewed = ?, expires = ?, revocation = ? WHERE key = ?",
            Array(Self.binds(record).dropFirst()) + [.blob(ByteBuffer(bytes: record.key))])
        forget([record.key])  // the row may have been deleted meanwhile: the next read decides
    }

    public func replace(_ record: SessionRecord, ifSealed expected: [UInt8]) async throws -> Bool {
        defer { wrote() }
        let sequence = forget([record.key])
        let rows = try await executor.run(
            "UPDATE bff_sessions SET sealed = ?, subject = ?, sid = ?, issuer = ?, created = ?, renewed = ?, expires = ?, revocation = ? WHERE key = ? AND sealed = ? RETURNING key",
            Array(Self.binds(record).dropFirst()) + [
                .blob(ByteBuffer(bytes: record.key)), .blob(ByteBuffer(bytes: expected)),
            ])
        if rows.isEmpty {
            forget([record.key])
        } else {
            await confirmWrite(record, sequence: sequence)
        }
        return !rows.isEmpty
    }

    @discardableResult
    public func remove(key: [UInt8]) async throws -> SessionRecord? {
        defer { wrote() }
        forget([key])
        defer { forget([key]) }
        return try await executor.run(
            "DELETE FROM bff_sessions WHERE key = ? RETURNING key, sealed, subject, sid, issuer, created, renewed, expires, revocation",
            [.blob(ByteBuffer(bytes: key))]
        ).first.flatMap(Self.record)
    }

    public func removeAll(issuer: String, idpSessionID: String?, subject: String?) async throws -> [SessionRecord] {
        guard idpSessionID != nil || subject != nil else { return [] }
        defer { wrote() }
        forget(nil)
        defer { forget(nil) }
        var sql = "DELETE FROM bff_sessions WHERE issuer = ?"
        var binds: [SQLiteData] = [.text(issuer)]
        if let idpSessionID {
            sql += " AND sid = ?"
            binds.append(.text(idpSessionID))
        }
        if let subject {
            sql += " AND subject = ?"
            binds.append(.text(subject))
        }
        sql += " RETURNING key, sealed, subject, sid, issuer, created, renewed, expires, revocation"
        return try await executor.run(sql, binds).compactMap(Self.record)
    }

    /// Removes expired rows in batches of ``cleanupBatchSize``, so lookups interleave with a large
    /// cleanup instead of waiting for one long statement.
    public func removeExpired(now: UnixTime) async throws -> [SessionRecord] {
        forget(nil)
        defer { forget(nil) }
        var removed: [SessionRecord] = []
        while true {
            let batch = try await executor.run(
                """
                DELETE FROM bff_sessions WHERE key IN (SELECT key FROM bff_sessions WHERE expires <= ? LIMIT ?)
                RETURNING key, sealed, subject, sid, issuer, created, renewed, expires, revocation
                """,
                [.integer(Int(now)), .integer(Self.cleanupBatchSize)]
            ).compactMap(Self.record)
            removed += batch
            wrote(max(1, batch.count / 10))
            if batch.count < Self.cleanupBatchSize { return removed }
        }
    }

    /// Rows deleted per cleanup statement.
    public static let cleanupBatchSize = 100

    /// Inserts many records in one transaction (imports, benchmarks).
    public func insert(batch records: [SessionRecord]) async throws {
        defer { wrote(records.count) }
        forget(nil)
        defer { forget(nil) }
        try await executor.transaction(
            records.map {
                (
                    "INSERT OR REPLACE INTO bff_sessions (key, sealed, subject, sid, issuer, created, renewed, expires, revocation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    Self.binds($0)
                )
            })
    }

    public func ping() async throws { _ = try await reader.run("SELECT 1") }

    public func list(issuer: String?, idpSessionID: String?, subject: String?, limit: Int) async throws
        -> [SessionRecord]
    {
        var conditions: [String] = []
        var binds: [SQLiteData] = []
        for (column, value) in [("issuer", issuer), ("sid", idpSessionID), ("subject", subject)] {
            if let value {
                conditions.append("\(column) = ?")
                binds.append(.text(value))
            }
        }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        binds.append(.integer(max(0, limit)))
        return try await reader.run(
            "SELECT key, sealed, subject, sid, issuer, created, renewed, expires, revocation FROM bff_sessions\(filter) ORDER BY created, key LIMIT ?",
            binds
        ).compactMap(Self.record)
    }

    /// Number of rows (tests, `bff sessions`).
    public func count() async throws -> Int {
        try await reader.run("SELECT COUNT(*) AS n FROM bff_sessions").first?.column("n")?.integer ?? 0
    }

    /// Waits for graceful shutdown, then closes the database. (Expired rows are removed by the
    /// store-agnostic cleanup service, which can also revoke their refresh tokens.)
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }

    /// Closes the database (after a running checkpoint finished).
    public func close() async throws {
        _ = try? await checkpointer.run("PRAGMA wal_checkpoint(PASSIVE)")
        try await checkpointConnection.close()
        try await readConnection.close()
        try await connection.close()
    }

    static func binds(_ record: SessionRecord) -> [SQLiteData] {
        [
            .blob(ByteBuffer(bytes: record.key)), .blob(ByteBuffer(bytes: record.sealed)), .text(record.subject),
            record.idpSessionID.map { .text($0) } ?? .null, .text(record.issuer), .integer(Int(record.createdAt)),
            .integer(Int(record.renewedAt)), .integer(Int(record.expiresAt)),
            record.revocationSeal.map { .blob(ByteBuffer(bytes: $0)) } ?? .null,
        ]
    }

    static func record(_ row: SQLiteRow) -> SessionRecord? {
        guard case .blob(let key) = row.column("key"), case .blob(let sealed) = row.column("sealed"),
            let subject = row.column("subject")?.string, let issuer = row.column("issuer")?.string,
            let created = row.column("created")?.integer, let renewed = row.column("renewed")?.integer,
            let expires = row.column("expires")?.integer
        else { return nil }
        return SessionRecord(
            key: Array(key.readableBytesView), sealed: Array(sealed.readableBytesView), subject: subject,
            idpSessionID: row.column("sid")?.string, issuer: issuer, createdAt: UnixTime(created),
            renewedAt: UnixTime(renewed), expiresAt: UnixTime(expires),
            revocationSeal: {
                if case .blob(let seal) = row.column("revocation") {
                    return Array(seal.readableBytesView)
                } else {
                    return nil
                }
            }())
    }
}

/// A SQLite store failure that is not a driver error.
public struct SQLiteStoreError: Error, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// The message.
    public var description: String { message }
}
