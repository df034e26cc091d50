import NIOSSL
import PostgresNIO

extension PostgresSessionStore {
    static func tls(_ mode: Configuration.TLSMode) throws -> PostgresConnection.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .verifyFull: .require(try NIOSSLContext(configuration: TLSConfiguration.makeClientConfiguration()))
        }
    }

    static func connectionConfiguration(_ configuration: Configuration) throws -> PostgresConnection.Configuration {
        var result = PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: try tls(configuration.tls))
        result.options.connectTimeout = .seconds(5)
        return result
    }

    /// The server's message (or the connection error), never query parameters.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
