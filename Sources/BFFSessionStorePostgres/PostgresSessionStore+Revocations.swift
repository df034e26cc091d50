import BFFCore
import Foundation
import NIOCore
import PostgresNIO

extension PostgresSessionStore {
    // MARK: shared revocation records (cookie mode with several instances)

    /// Publishes a revocation record to every instance.
    public func publishRevocation(entry: String, at: UnixTime) async throws {
        try await client.query(
            "INSERT INTO \(unescaped: revocationTable) (entry, revoked_at) VALUES (\(ByteBuffer(string: entry)), \(Int64(at)))",
            logger: logger)
    }

    /// Revocation records with an id above `cursor`, and the new cursor.
    public func revocations(after cursor: Int64) async throws -> (entries: [(String, UnixTime)], cursor: Int64) {
        var entries: [(String, UnixTime)] = []
        var last = cursor
        for try await (id, entry, at) in try await client.query(
            """
            SELECT id, entry, revoked_at FROM \(unescaped: revocationTable) WHERE id > \(cursor) ORDER BY id LIMIT 10000
            """, logger: logger
        ).decode((Int64, ByteBuffer, Int64).self) {
            entries.append((String(buffer: entry), UnixTime(at)))
            last = max(last, id)
        }
        return (entries, last)
    }

    /// Deletes revocation records older than `before`.
    public func pruneRevocations(before: UnixTime) async throws {
        try await client.query(
            "DELETE FROM \(unescaped: revocationTable) WHERE revoked_at < \(Int64(before))", logger: logger)
    }
}
