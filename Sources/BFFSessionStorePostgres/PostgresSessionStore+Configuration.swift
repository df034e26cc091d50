import BFFCore
import Foundation
import NIOCore
import PostgresNIO

extension PostgresSessionStore {
    /// Connection settings.
    public struct Configuration: Sendable {
        /// Host name or address.
        public var host: String
        /// Port.
        public var port: Int
        /// User.
        public var username: String
        /// Password.
        public var password: String?
        /// Database.
        public var database: String?
        /// PostgreSQL schema holding the tables (created if missing); lets several deployments or
        /// test runs share a database.
        public var schema: String
        /// TLS: `disable` only for loopback or a private network you trust.
        public var tls: TLSMode
        /// Most connections kept open.
        public var maximumConnections: Int

        /// How to secure the connection.
        public enum TLSMode: String, Sendable {
            /// Plain TCP.
            case disable
            /// TLS with a verified certificate and host name.
            case verifyFull = "verify-full"
        }

        /// Parses `postgres://user:password@host:port/database?sslmode=…&schema=…&pool=…`.
        /// `sslmode` is `disable` or `verify-full` (`require` is taken as `verify-full`: we never
        /// accept an unverified certificate); it defaults to `disable` for loopback hosts and
        /// `verify-full` otherwise.
        public init(url: String) throws {
            guard let components = URLComponents(string: url),
                components.scheme == "postgres" || components.scheme == "postgresql",
                let host = components.host, !host.isEmpty
            else {
                throw PostgresStoreError(message: "not a postgres:// URL")
            }
            guard let username = components.user, !username.isEmpty else {
                throw PostgresStoreError(message: "the postgres URL has no user name")
            }
            self.host = host
            self.port = components.port ?? 5432
            self.username = username.removingPercentEncoding ?? username
            self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
            let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            self.database = path.isEmpty ? nil : path
            self.schema = "public"
            self.maximumConnections = 20
            let loopback = host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]"
            self.tls = loopback ? .disable : .verifyFull
            for item in components.queryItems ?? [] {
                switch item.name {
                case "sslmode":
                    switch item.value ?? "" {
                    case "disable": self.tls = .disable
                    case "require", "verify-ca", "verify-full": self.tls = .verifyFull
                    default:
                        throw PostgresStoreError(
                            message: "sslmode '\(item.value ?? "")' is not supported; use disable or verify-full")
                    }
                case "schema":
                    guard let value = item.value, Self.isIdentifier(value) else {
                        throw PostgresStoreError(
                            message: "schema must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)")
                    }
                    self.schema = value
                case "pool":
                    guard let value = item.value.flatMap(Int.init), (1...500).contains(value) else {
                        throw PostgresStoreError(message: "pool must be a number of connections from 1 to 500")
                    }
                    self.maximumConnections = value
                default:
                    throw PostgresStoreError(
                        message: "unknown postgres URL parameter '\(item.name)'; use sslmode, schema or pool")
                }
            }
        }

        static func isIdentifier(_ value: String) -> Bool {
            guard let first = value.utf8.first, value.utf8.count <= 63 else { return false }
            return (first == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first))
                && value.utf8.allSatisfy {
                    $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0)
                        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                }
        }
    }
}

extension PostgresSessionStore.Configuration: CustomStringConvertible, CustomDebugStringConvertible {
    /// Never the password.
    public var description: String {
        "PostgresSessionStore.Configuration(\(username)@\(host):\(port)/\(database ?? ""), schema: \(schema), "
            + "tls: \(tls.rawValue), password: \(password == nil ? "nil" : "<redacted>"))"
    }
    /// As ``description``.
    public var debugDescription: String { description }
}
