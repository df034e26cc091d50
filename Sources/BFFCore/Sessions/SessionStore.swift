import Synchronization

/// What a server-side store keeps for one session: ciphertext plus the index columns it needs.
///
/// Stores never see plaintext: `sealed` is the session encrypted with a per-session key that lives
/// only in the user's cookie, and `key` is a SHA-256 hash of the session id, not the id itself.
public struct SessionRecord: Sendable, Equatable {
    /// SHA-256 of the random session id (32 bytes); the primary key.
    public var key: [UInt8]
    /// The session sealed with its per-session key.
    public var sealed: [UInt8]
    /// `sub`, for revoke-by-subject.
    public var subject: String
    /// The IdP `sid`, for back-channel logout.
    public var idpSessionID: String?
    /// The issuer, so logout by `sid` only matches its own IdP.
    public var issuer: String
    /// When created.
    public var createdAt: UnixTime
    /// When last renewed.
    public var renewedAt: UnixTime
    /// When the store may forget it.
    public var expiresAt: UnixTime
    /// The refresh token sealed with the gateway's key ring (not the per-session key), so sessions
    /// ended without the user's cookie (back-channel logout, expiry) can still have it revoked. Like
    /// `sealed`, useless without the gateway's keys.
    public var revocationSeal: [UInt8]?

    /// Creates a record.
    public init(
        key: [UInt8], sealed: [UInt8], subject: String, idpSessionID: String?, issuer: String,
        createdAt: UnixTime, renewedAt: UnixTime, expiresAt: UnixTime, revocationSeal: [UInt8]? = nil
    ) {
        self.key = key
        self.sealed = sealed
        self.subject = subject
        self.idpSessionID = idpSessionID
        self.issuer = issuer
        self.createdAt = createdAt
        self.renewedAt = renewedAt
        self.expiresAt = expiresAt
        self.revocationSeal = revocationSeal
    }
}

/// Server-side session storage. Implementations only move opaque bytes and index columns.
public protocol SessionStore: Sendable {
    /// Stores a new record (replacing one with the same key).
    func insert(_ record: SessionRecord) async throws
    /// The record for `key` if present and not expired at `now`.
    func find(key: [UInt8], now: UnixTime) async throws -> SessionRecord?
    /// Replaces an existing record; a no-op if it was deleted meanwhile.
    func update(_ record: SessionRecord) async throws
    /// Replaces the record only if its stored `sealed` bytes still equal `expected` (a write made
    /// meanwhile, by this process or another, wins); returns whether it replaced it.
    func replace(_ record: SessionRecord, ifSealed expected: [UInt8]) async throws -> Bool
    /// Runs `body` with the current record for `key` (nil when absent or expired) while no other
    /// `exclusively` body runs for that key, and writes the record `body` returns (if any) before
    /// the next one starts. Stores shared by several processes must make this hold across them
    /// (PostgreSQL: a row lock); the default is correct within one process only when callers
    /// already serialise per key, as ``SessionManager/exclusively(_:_:)`` does.
    func exclusively<T: Sendable>(
        key: [UInt8], now: UnixTime, _ body: @Sendable (SessionRecord?) async throws -> (SessionRecord?, T)
    ) async throws -> T
    /// Deletes the record for `key`, returning it if it existed.
    @discardableResult
    func remove(key: [UInt8]) async throws -> SessionRecord?
    /// Deletes every record of `issuer` matching `idpSessionID` (if given) and `subject` (if
    /// given); at least one of them must be given. Returns the deleted records.
    func removeAll(issuer: String, idpSessionID: String?, subject: String?) async throws -> [SessionRecord]
    /// Deletes expired records, returning them.
    func removeExpired(now: UnixTime) async throws -> [SessionRecord]
    /// Whether the store answers (for readiness probes).
    func ping() async throws
    /// Records matching every given filter (all when none), oldest first, at most `limit`.
    func list(issuer: String?, idpSessionID: String?, subject: String?, limit: Int) async throws -> [SessionRecord]
}

extension SessionStore {
    /// Find, run, compare-and-replace: exclusive within one process when callers serialise per key.
    public func exclusively<T: Sendable>(
        key: [UInt8], now: UnixTime, _ body: @Sendable (SessionRecord?) async throws -> (SessionRecord?, T)
    ) async throws -> T {
        let current = try await find(key: key, now: now)
        let (replacement, result) = try await body(current)
        if let replacement, let current { _ = try await replace(replacement, ifSealed: current.sealed) }
        return result
    }
}

/// What a lookup that must not wait knows.
public enum ImmediateLookup: Sendable {
    /// The record, current.
    case found(SessionRecord)
    /// Certainly no such (unexpired) record.
    case absent
    /// Not known without I/O: use ``SessionStore/find(key:now:)``.
    case unknown
}

/// A store that can answer some lookups without suspending (the event-loop fast path uses it).
public protocol ImmediateSessionLookup: Sendable {
    /// ``SessionStore/find(key:now:)`` when it can be answered at once.
    func findImmediately(key: [UInt8], now: UnixTime) -> ImmediateLookup
}

/// An in-process store: a dictionary behind a mutex. Sessions end with the process.
///
/// A lock rather than an actor: every API call looks a session up, and an actor would add an
/// executor hop (a task switch) to each; the critical sections here are a hash lookup or insert.
public final class MemorySessionStore: SessionStore, ImmediateSessionLookup {
    private let records = Mutex<[ByteKey: SessionRecord]>([:])

    /// An empty store.
    public init() {}

    /// Number of records held (expired ones included until cleaned).
    public var count: Int { records.withLock { $0.count } }

    public func insert(_ record: SessionRecord) { records.withLock { $0[ByteKey(record.key)] = record } }

    public func find(key: [UInt8], now: UnixTime) -> SessionRecord? {
        records.withLock { records in
            guard let record = records[ByteKey(key)] else { return nil }
            guard record.expiresAt > now else {
                records[ByteKey(key)] = nil
                return nil
            }
            return record
        }
    }

    public func findImmediately(key: [UInt8], now: UnixTime) -> ImmediateLookup {
        find(key: key, now: now).map { .found($0) } ?? .absent
    }

    public func update(_ record: SessionRecord) {
        records.withLock { records in
            guard records[ByteKey(record.key)] != nil else { return }
            records[ByteKey(record.key)] = record
        }
    }

    public func replace(_ record: SessionRecord, ifSealed expected: [UInt8]) -> Bool {
        records.withLock { records in
            guard records[ByteKey(record.key)]?.sealed == expected else { return false }
            records[ByteKey(record.key)] = record
            return true
        }
    }

    public func remove(key: [UInt8]) -> SessionRecord? { records.withLock { $0.removeValue(forKey: ByteKey(key)) } }

    public func removeAll(issuer: String, idpSessionID: String?, subject: String?) -> [SessionRecord] {
        guard idpSessionID != nil || subject != nil else { return [] }
        return records.withLock { records in
            let matching = records.values.filter { record in
                record.issuer == issuer && (idpSessionID == nil || record.idpSessionID == idpSessionID)
                    && (subject == nil || record.subject == subject)
            }
            for record in matching { records[ByteKey(record.key)] = nil }
            return matching
        }
    }

    public func removeExpired(now: UnixTime) -> [SessionRecord] {
        records.withLock { records in
            let expired = records.values.filter { $0.expiresAt <= now }
            for record in expired { records[ByteKey(record.key)] = nil }
            return expired
        }
    }

    public func ping() {}

    public func list(issuer: String?, idpSessionID: String?, subject: String?, limit: Int) -> [SessionRecord] {
        let all = records.withLock { Array($0.values) }
        return Array(
            all.filter { record in
                (issuer == nil || record.issuer == issuer)
                    && (idpSessionID == nil || record.idpSessionID == idpSessionID)
                    && (subject == nil || record.subject == subject)
            }.sorted {
                $0.createdAt != $1.createdAt ? $0.createdAt < $1.createdAt : $0.key.lexicographicallyPrecedes($1.key)
            }.prefix(limit))
    }
}
