import BFFCore
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Synchronization

// The schema (its version, the session and revocation tables, their indexes): created or brought
// up to date at start, one instance at a time.
extension PostgresSessionStore {
    func migrate() async throws {
        try await client.withTransaction(logger: logger) { connection in
            // One migrating instance at a time; the others wait, then find the schema current.
            try await connection.query("SELECT pg_advisory_xact_lock(7439200187)", logger: logger)
            try await connection.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: schema)", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS \(unescaped: schema).bff_schema (version integer NOT NULL)",
                logger: logger)
            var version = 0
            for try await value in try await connection.query(
                "SELECT max(version) FROM \(unescaped: schema).bff_schema", logger: logger
            ).decode(Int?.self) {
                version = value ?? 0
            }
            if version > Self.schemaVersion {
                throw PostgresStoreError(
                    message:
                        "the session database has schema \(version), newer than this gateway's \(Self.schemaVersion)")
            }
            if version < 1 {
                for statement: PostgresQuery in [
                    """
                    CREATE TABLE \(unescaped: sessions) (
                      key bytea PRIMARY KEY, sealed bytea NOT NULL, subject text NOT NULL, sid text,
                      issuer text NOT NULL, created bigint NOT NULL, renewed bigint NOT NULL,
                      expires bigint NOT NULL, revocation bytea)
                    """,
                    "CREATE INDEX ON \(unescaped: sessions) (issuer, sid)",
                    "CREATE INDEX ON \(unescaped: sessions) (issuer, subject)",
                    "CREATE INDEX ON \(unescaped: sessions) (expires)",
                    """
                    CREATE TABLE \(unescaped: revocationTable) (
                      id bigserial PRIMARY KEY, entry bytea NOT NULL, revoked_at bigint NOT NULL)
                    """,
                    "CREATE INDEX ON \(unescaped: revocationTable) (revoked_at)",
                    "INSERT INTO \(unescaped: schema).bff_schema (version) VALUES (1)",
                ] {
                    try await connection.query(statement, logger: logger)
                }
            }
            if version < 2 {
                for statement in changeNotificationStatements() + [
                    "INSERT INTO \(unescaped: schema).bff_schema (version) VALUES (2)"
                ] {
                    try await connection.query(statement, logger: logger)
                }
            }
        }
    }
}
