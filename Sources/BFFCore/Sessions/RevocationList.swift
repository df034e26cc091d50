import Synchronization

/// Sessions ended without a server-side store: records of (issuer, sid | sub | logout id, time).
///
/// In cookie mode the session lives in the browser, so logout cannot delete it; a replayed older
/// cookie must still be anonymous. Every session created at or before a matching record's time is
/// treated as ended. Records are kept for the absolute session lifetime, after which no cookie
/// they could match is still valid.
public final class RevocationList: Sendable {
    private struct Entry: Sendable {
        var revokedAt: UnixTime
    }
    private let entries = Mutex<[String: Entry]>([:])
    /// Records added here and not yet handed to a ``SharedRevocationFeed``.
    private let unpublished = Mutex<[(String, UnixTime)]>([])
    /// Whether local records are queued for a feed (only when one is attached).
    private let sharing: Bool
    /// How long records are kept.
    public let retention: Int64

    /// Creates an empty list that keeps records for `retention` seconds.
    public init(retention: Int64, shared: Bool = false) {
        self.retention = retention
        self.sharing = shared
    }

    /// Ends every session of `issuer` with IdP session id `sid`, created at or before `at`.
    public func revoke(issuer: String, idpSessionID sid: String, at: UnixTime) {
        add("sid\u{0}\(issuer)\u{0}\(sid)", at)
    }
    /// Ends every session of `issuer` and `subject`, created at or before `at`.
    public func revoke(issuer: String, subject: String, at: UnixTime) { add("sub\u{0}\(issuer)\u{0}\(subject)", at) }
    /// Ends the one session with this logout id.
    public func revoke(logoutID: String, at: UnixTime) { add("lid\u{0}\(logoutID)", at) }

    /// Whether `session` has been revoked.
    public func isRevoked(_ session: Session) -> Bool {
        entries.withLock { entries in
            if entries.isEmpty { return false }
            let keys =
                [
                    "lid\u{0}\(session.logoutID)",
                    "sub\u{0}\(session.issuer)\u{0}\(session.subject)",
                ] + (session.idpSessionID.map { ["sid\u{0}\(session.issuer)\u{0}\($0)"] } ?? [])
            return keys.contains { key in
                guard let entry = entries[key] else { return false }
                return session.createdAt <= entry.revokedAt
            }
        }
    }

    /// Drops records older than the retention period.
    public func prune(now: UnixTime) {
        entries.withLock { entries in entries = entries.filter { $0.value.revokedAt + retention > now } }
    }

    /// Number of records held.
    public var count: Int { entries.withLock { $0.count } }

    private func add(_ key: String, _ at: UnixTime) {
        apply(entry: key, at: at)
        if sharing { unpublished.withLock { $0.append((key, at)) } }
    }

    /// Takes a record from another instance (through a ``SharedRevocationFeed``).
    public func apply(entry key: String, at: UnixTime) {
        entries.withLock { entries in
            let previous = entries[key]?.revokedAt ?? .min
            entries[key] = Entry(revokedAt: max(previous, at))
        }
    }

    /// Removes and returns the records added here since the last call, for publishing.
    public func takeUnpublished() -> [(entry: String, at: UnixTime)] {
        unpublished.withLock { pending in
            defer { pending.removeAll() }
            return pending.map { (entry: $0.0, at: $0.1) }
        }
    }

    /// Puts records back that could not be published (the feed was unreachable).
    public func requeue(_ records: [(entry: String, at: UnixTime)]) {
        unpublished.withLock { $0.insert(contentsOf: records.map { ($0.entry, $0.at) }, at: 0) }
    }
}

/// Revocation records shared by several gateway instances (cookie mode behind a load balancer):
/// each instance publishes its own records and polls for the others'.
public protocol SharedRevocationFeed: Sendable {
    /// Publishes one record.
    func publishRevocation(entry: String, at: UnixTime) async throws
    /// Records after `cursor` (0 = from the start), and the cursor to ask from next time.
    func revocations(after cursor: Int64) async throws -> (entries: [(String, UnixTime)], cursor: Int64)
    /// Deletes records older than `before`.
    func pruneRevocations(before: UnixTime) async throws
}
