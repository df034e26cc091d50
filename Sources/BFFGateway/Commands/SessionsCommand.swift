import ArgumentParser
import BFFCore
import BFFHummingbird
import BFFOIDC
import BFFSessionStorePostgres
import Foundation
import Logging

/// `bff sessions list|revoke`: operate on the configured server-side store directly.
struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "List or revoke sessions in the configured store.",
        subcommands: [List.self, Revoke.self])

    /// Opens the configured store; `frontend` (checked before anything is opened) picks the
    /// frontends the command acts on (``frontends(_:named:)``).
    static func openStore(config: String, frontend: String? = nil) async throws -> (
        any PersistentSessionStore, GatewayConfiguration, [FrontendSettings]
    ) {
        let configuration = try CommandSupport.loadConfiguration(path: config)
        let chosen = try frontends(configuration, named: frontend)
        var logger = Logger(label: "bff.sessions")
        logger.logLevel = .error
        switch configuration.bff.session.store {
        case .sqlite:
            guard FileManager.default.fileExists(atPath: configuration.effectiveSQLitePath) else {
                CommandSupport.printError(
                    "\(configuration.effectiveSQLitePath): no session database (fix: check session.sqlite.path)")
                throw ExitCode(1)
            }
        case .postgres:
            break
        default:
            CommandSupport.printError(
                "\(config): session.store is \(configuration.bff.session.store); only a persistent store can be managed (fix: use sqlite or postgres)"
            )
            throw ExitCode(1)
        }
        do {
            guard let store = try await Gateway.openStore(for: configuration, logger: logger) else { throw ExitCode(1) }
            return (store, configuration, chosen)
        } catch let error as PostgresStoreError {
            CommandSupport.printError("\(error) (fix: check session.postgres.url)")
            throw ExitCode(1)
        }
    }

    /// The frontends a command acts on: the one named by `--frontend`, else every one (a
    /// configuration without `frontends:` has one, unnamed).
    static func frontends(_ configuration: GatewayConfiguration, named name: String?) throws -> [FrontendSettings] {
        let all =
            configuration.frontends.isEmpty
            ? [FrontendSettings(name: "", match: FrontendMatch(), bff: configuration.bff)] : configuration.frontends
        guard let name else { return all }
        guard let chosen = all.first(where: { $0.name == name && !name.isEmpty }) else {
            let names = configuration.frontends.map(\.name)
            CommandSupport.printError(
                "--frontend \(name): no such frontend (fix: use one of: \(names.isEmpty ? "none configured" : names.joined(separator: ", ")))"
            )
            throw ExitCode(1)
        }
        return [chosen]
    }

    /// Whether `record` is a session of `frontend` (its store key carries the frontend's tag).
    static func belongs(_ record: SessionRecord, to frontend: FrontendSettings) -> Bool {
        frontend.name.isEmpty || record.key.starts(with: SessionManager.frontendTag(frontend.name))
    }

    /// `bff sessions list [--sub S] [--sid S] [--frontend NAME]`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sessions (never their contents).")
        @Option(name: .long, help: "Path of the YAML configuration.") var config: String
        @Option(name: .long, help: "Only this subject.") var sub: String?
        @Option(name: .long, help: "Only this IdP session id.") var sid: String?
        @Option(name: .long, help: "Only this frontend's sessions (frontends[].name).") var frontend: String?
        @Option(name: .long, help: "At most this many rows.") var limit: Int = 1000

        func run() async throws {
            let (store, configuration, chosen) = try await SessionsCommand.openStore(config: config, frontend: frontend)
            var records: [SessionRecord]
            do {
                // Filtered by frontend after reading: read enough rows that `limit` of its remain.
                records = try await store.list(
                    issuer: nil, idpSessionID: sid, subject: sub, limit: frontend == nil ? limit : Int(Int32.max))
            } catch {
                await store.shutdown()
                throw error
            }
            await store.shutdown()
            if frontend != nil {
                records = Array(
                    records.filter { record in chosen.contains { SessionsCommand.belongs(record, to: $0) } }
                        .prefix(limit))
            }
            let named = configuration.frontends
            func frontendName(_ record: SessionRecord) -> String {
                (named.first { SessionsCommand.belongs(record, to: $0) }?.name ?? "-")
                    .padding(toLength: 12, withPad: " ", startingAt: 0)
            }
            let now = SystemTimeSource().now
            print(  // justified: the command's result goes to stdout
                (named.isEmpty ? "" : "frontend     ")
                    + "id        subject                          sid                      created               expires-in"
            )
            for record in records {
                let id = record.key.prefix(4).map { String(format: "%02x", $0) }.joined()
                let created = ISO8601DateFormatter().string(
                    from: Date(timeIntervalSince1970: TimeInterval(record.createdAt)))
                print(  // justified: the command's result goes to stdout
                    (named.isEmpty ? "" : frontendName(record) + " ")
                        + "\(id)  \(record.subject.padding(toLength: 32, withPad: " ", startingAt: 0)) \((record.idpSessionID ?? "-").padding(toLength: 24, withPad: " ", startingAt: 0)) \(created)  \(max(0, record.expiresAt - now))s"
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
        @Option(name: .long, help: "Only this frontend's sessions (frontends[].name).") var frontend: String?

        func validate() throws {
            let chosen = [sub != nil, sid != nil, allExpired].filter { $0 }.count
            guard chosen == 1 else { throw ValidationError("give exactly one of --sub, --sid or --all-expired") }
            if allExpired && frontend != nil {
                throw ValidationError("--all-expired removes every frontend's expired sessions: leave out --frontend")
            }
        }

        func run() async throws {
            let (store, configuration, chosen) = try await SessionsCommand.openStore(config: config, frontend: frontend)
            // Each frontend's sessions of its own issuer; with several, matched by the store key's tag.
            var removed: [(FrontendSettings, [SessionRecord])] = []
            do {
                if allExpired {
                    let expired = try await store.removeExpired(now: SystemTimeSource().now)
                    removed = chosen.map { frontend in
                        (frontend, expired.filter { SessionsCommand.belongs($0, to: frontend) })
                    }
                } else if chosen.count == 1 && chosen[0].name.isEmpty {
                    removed = [
                        (
                            chosen[0],
                            try await store.removeAll(
                                issuer: configuration.bff.oidc.issuer, idpSessionID: sid, subject: sub)
                        )
                    ]
                } else {
                    for frontend in chosen {
                        let listed = try await store.list(
                            issuer: frontend.bff.oidc.issuer, idpSessionID: sid, subject: sub, limit: Int(Int32.max))
                        var ended: [SessionRecord] = []
                        for record in listed where SessionsCommand.belongs(record, to: frontend) {
                            if let gone = try await store.remove(key: record.key) { ended.append(gone) }
                        }
                        removed.append((frontend, ended))
                    }
                }
            } catch {
                await store.shutdown()
                throw error
            }
            await store.shutdown()
            print("revoked \(removed.map(\.1.count).reduce(0, +)) session(s)")  // justified: the command's result
            for (frontend, records) in removed where !records.isEmpty {
                var settings = configuration
                settings.bff = frontend.bff
                try await Self.revokeRefreshTokens(of: records, configuration: settings)
            }
        }

        /// Revokes the ended sessions' refresh tokens at the IdP, through the same revoker the
        /// gateway's logouts use (when `tokens.revokeRefreshTokenOnLogout` is on). The IdP is
        /// contacted only when there is a token to revoke.
        static func revokeRefreshTokens(of removed: [SessionRecord], configuration: GatewayConfiguration) async throws {
            guard configuration.bff.tokens.revokeRefreshTokenOnLogout,
                removed.contains(where: { $0.revocationSeal != nil })
            else { return }
            var logger = Logger(label: "bff.sessions")
            logger.logLevel = .error
            let keyRing = try Gateway.keyRing(for: configuration, logger: logger)
            let client = AsyncHTTPClientTransport.makeClient()
            do {
                let bff = try BFF(
                    configuration: configuration.bff, keyRing: keyRing, http: AsyncHTTPClientTransport(client: client),
                    store: MemorySessionStore(), logger: logger)
                let tokens = bff.sessions.refreshTokens(of: removed)
                bff.revoker.enqueue(tokens)
                await bff.revoker.revokeQueued()
                let done = bff.revoker.statistics
                print(  // justified: the command's result goes to stdout
                    "refresh tokens: \(done.revoked) revoked at the identity provider, \(done.failed) failed, \(done.skipped) not revocable (no revocation endpoint), \(removed.count - tokens.count) unreadable or none"
                )
                try await client.shutdown()
                if done.failed > 0 { throw ExitCode(1) }
            } catch {
                try? await client.shutdown()
                throw error
            }
        }
    }
}
