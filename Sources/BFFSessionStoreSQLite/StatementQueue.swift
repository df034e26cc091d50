import SQLiteNIO

/// Runs statements one at a time on the store's connection.
actor StatementQueue {
    let connection: SQLiteConnection
    init(connection: SQLiteConnection) { self.connection = connection }

    func run(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        try await connection.query(sql, binds)
    }

    func transaction(_ statements: [(String, [SQLiteData])]) async throws {
        _ = try await connection.query("BEGIN IMMEDIATE", [])
        do {
            for (sql, binds) in statements { _ = try await connection.query(sql, binds) }
            _ = try await connection.query("COMMIT", [])
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            throw error
        }
    }
}
