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
    private let retention: Int64

    /// Creates an empty list that keeps records for `retention` seconds.
    public init(retention: Int64) { self.retention = retention }

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
        entries.withLock { entries in
            let previous = entries[key]?.revokedAt ?? .min
            entries[key] = Entry(revokedAt: max(previous, at))
        }
    }
}
