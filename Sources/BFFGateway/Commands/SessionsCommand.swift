import ArgumentParser
import BFFCore
import BFFSessionStoreSQLite
import Foundation
import Logging

/// `bff sessions list|revoke`: operate on the configured server-side store directly.
struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "List or revoke sessions in the configured store.",
        subcommands: [List.self, Revoke.self])

    static func openStore(config: String) async throws -> (SQLiteSessionStore, GatewayConfiguration) {
        let configuration = try CommandSupport.loadConfiguration(path: config)
        guard configuration.bff.session.store == .sqlite else {
            CommandSupport.printError(
                "\(config): session.store is \(configuration.bff.session.store); only a persistent store can be managed (fix: use sqlite)"
            )
            throw ExitCode(1)
        }
        var logger = Logger(label: "bff.sessions")
        logger.logLevel = .error
        guard FileManager.default.fileExists(atPath: configuration.effectiveSQLitePath) else {
            CommandSupport.printError(
                "\(configuration.effectiveSQLitePath): no session database (fix: check session.sqlite.path)")
            throw ExitCode(1)
        }
        return (
            try await SQLiteSessionStore.open(path: configuration.effectiveSQLitePath, logger: logger), configuration
        )
    }

    /// `bff sessions list [--sub S] [--sid S]`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sessions (never their contents).")
        @Option(name: .long, help: "Path of the YAML configuration.") var config: String
        @Option(name: .long, help: "Only this subject.") var sub: String?
        @Option(name: .long, help: "Only this IdP session id.") var sid: String?
        @Option(name: .long, help: "At most this many rows.") var limit: Int = 1000

        func run() async throws {
            let (store, _) = try await SessionsCommand.openStore(config: config)
            let records = try await store.list(issuer: nil, idpSessionID: sid, subject: sub, limit: limit)
            try await store.close()
            let now = SystemTimeSource().now
            print(  // justified: the command's result goes to stdout
                "id        subject                          sid                      created               expires-in")
            for record in records {
                let id = record.key.prefix(4).map { String(format: "%02x", $0) }.joined()
                let created = ISO8601DateFormatter().string(
                    from: Date(timeIntervalSince1970: TimeInterval(record.createdAt)))
                print(  // justified: the command's result goes to stdout
                    "\(id)  \(record.subject.padding(toLength: 32, withPad: " ", startingAt: 0)) \((record.idpSessionID ?? "-").padding(toLength: 24, withPad: " ", startingAt: 0)) \(created)  \(max(0, record.expiresAt - now))s"
                )
            }
            print("\(records.count) session(s)")  // justified: the command's result goes to stdout
        }
    }

    /// `bff sessions revoke (--sub S | --sid S | --all-expired)`.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End sessions by subject, IdP session id, or all expired ones.")
        @Option(name: .long, help: "Path of the YAML configuration.") var config: String
        @Option(name: .long, help: "End every session of this subject.") var sub: String?
        @Option(name: .long, help: "End every session of this IdP session id.") var sid: String?
        @Flag(name: .long, help: "Remove every expired session.") var allExpired = false

        func validate() throws {
            let chosen = [sub != nil, sid != nil, allExpired].filter { $0 }.count
            guard chosen == 1 else { throw ValidationError("give exactly one of --sub, --sid or --all-expired") }
        }

        func run() async throws {
            let (store, configuration) = try await SessionsCommand.openStore(config: config)
            let removed: [SessionRecord]
            do {
                if allExpired {
                    removed = try await store.removeExpired(now: SystemTimeSource().now)
                } else {
                    removed = try await store.removeAll(
                        issuer: configuration.bff.oidc.issuer, idpSessionID: sid, subject: sub)
                }
            } catch {
                try? await store.close()
                throw error
            }
            try await store.close()
            print("revoked \(removed.count) session(s)")  // justified: the command's result goes to stdout
        }
    }
}
