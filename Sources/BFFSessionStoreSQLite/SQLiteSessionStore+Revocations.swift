import BFFCore
import NIOCore
import SQLiteNIO

// Cookie mode keeps no sessions on the server, but its revocation records (logout, back-channel
// logout) must outlive a restart, or a cookie captured before a logout works again after the next
// deploy. The gateway keeps them in a small SQLite file (mode 0600, like every database here) and
// reads them all back before it serves.
extension SQLiteSessionStore: SharedRevocationFeed {
    /// Stores one revocation record (durably: the write is committed before this returns).
    public func publishRevocation(entry: String, at: UnixTime) async throws {
        _ = try await executor.run(
            "INSERT INTO bff_revocations (entry, revoked_at) VALUES (?, ?)",
            [.blob(ByteBuffer(string: entry)), .integer(Int(at))])
    }

    /// Records with an id above `cursor` (at most 10,000), and the cursor to ask from next.
    public func revocations(after cursor: Int64) async throws -> (entries: [(String, UnixTime)], cursor: Int64) {
        let rows = try await reader.run(
            "SELECT id, entry, revoked_at FROM bff_revocations WHERE id > ? ORDER BY id LIMIT 10000",
            [.integer(Int(cursor))])
        var entries: [(String, UnixTime)] = []
        var last = cursor
        for row in rows {
            guard let id = row.column("id")?.integer, let entry = row.column("entry")?.blob,
                let at = row.column("revoked_at")?.integer
            else { continue }
            entries.append((String(buffer: entry), UnixTime(at)))
            last = max(last, Int64(id))
        }
        return (entries, last)
    }

    /// Deletes records older than `before` (the cookie's absolute lifetime has passed for them).
    public func pruneRevocations(before: UnixTime) async throws {
        _ = try await executor.run("DELETE FROM bff_revocations WHERE revoked_at < ?", [.integer(Int(before))])
    }
}
