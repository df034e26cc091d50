import BFFCore
import NIOCore
import PostgresNIO

/// Bulk inserts, counting and dropping: imports, benchmarks and tests.
extension PostgresSessionStore {
    /// Inserts many records in one statement per thousand (imports, benchmarks).
    public func insert(batch records: [SessionRecord]) async throws {
        cache.withLock { $0.evictAll() }
        defer { cache.withLock { $0.evictAll() } }
        var start = records.startIndex
        while start < records.endIndex {
            let end = min(start + 1000, records.endIndex)
            var bindings = PostgresBindings(capacity: (end - start) * 9)
            var rows: [String] = []
            for (offset, record) in records[start..<end].enumerated() {
                let base = offset * 9
                rows.append("(" + (1...9).map { "$\(base + $0)" }.joined(separator: ",") + ")")
                Self.bind(record, into: &bindings)
            }
            try await client.query(
                PostgresQuery(
                    unsafeSQL: "INSERT INTO \(sessions) (\(Self.columns)) VALUES \(rows.joined(separator: ","))",
                    binds: bindings), logger: logger)
            start = end
        }
    }

    static func bind(_ record: SessionRecord, into bindings: inout PostgresBindings) {
        bindings.append(ByteBuffer(bytes: record.key))
        bindings.append(ByteBuffer(bytes: record.sealed))
        bindings.append(record.subject)
        bindings.append(record.idpSessionID)
        bindings.append(record.issuer)
        bindings.append(Int64(record.createdAt))
        bindings.append(Int64(record.renewedAt))
        bindings.append(Int64(record.expiresAt))
        bindings.append(record.revocationSeal.map { ByteBuffer(bytes: $0) })
    }

    /// Number of rows (tests, benchmarks).
    public func count() async throws -> Int {
        var total = 0
        for try await value in try await client.query("SELECT count(*) FROM \(unescaped: sessions)", logger: logger)
            .decode(Int64.self)
        {
            total = Int(value)
        }
        return total
    }

    /// Drops the store's schema with everything in it (tests).
    public func dropSchema() async throws {
        try await client.query("DROP SCHEMA IF EXISTS \(unescaped: schema) CASCADE", logger: logger)
    }
}
