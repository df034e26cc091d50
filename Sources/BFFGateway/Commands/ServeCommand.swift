import ArgumentParser
import AsyncHTTPClient
import BFFCore
import BFFForwarder
import BFFOIDC
import Foundation
import Logging
import ServiceLifecycle

/// `bff serve --config FILE`.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the gateway.")

    @Option(name: .long, help: "Path of the YAML configuration.")
    var config: String

    func run() async throws {
        let configuration = try CommandSupport.loadConfiguration(path: config)  // (problems go to stderr as text)
        CommandSupport.bootstrapLogging(configuration.logging)
        let logger = Logger(label: "bff")
        let keyRing = try Gateway.keyRing(for: configuration, logger: logger)
        let client = AsyncHTTPClientTransport.makeClient()
        let tls = try TLSUpstreams(caFiles: configuration.bff.apis.compactMap(\.caFile))
        let store = try await Gateway.openStore(for: configuration, logger: logger)
        let forwarder = NIOUpstream(tlsFallback: tls)
        var ownerLock: SQLiteOwnerLock?
        defer { ownerLock?.release() }
        do {
            // One gateway per SQLite file (see SQLiteOwnerLock), held until the gateway stops.
            if configuration.bff.session.store == .sqlite {
                ownerLock = try SQLiteOwnerLock.acquire(databasePath: configuration.effectiveSQLitePath)
            }
            let gateway = try Gateway.build(
                configuration: configuration, keyRing: keyRing, http: AsyncHTTPClientTransport(client: client),
                upstream: forwarder, store: store,
                revocationFeed: store as? any SharedRevocationFeed, logger: logger,
                apiFastPath: ProcessInfo.processInfo.environment["BFF_API_FAST_PATH"] != "false",
                recordMetrics: ProcessInfo.processInfo.environment["BFF_METRICS"] != "false")
            // Cookie mode: every stored revocation applies before the first request is served.
            try await gateway.bff.restoreRevocations()
            var services: [any Service] = [gateway.service, forwarder] + gateway.maintenance
            if let store { services.append(store) }
            if let admin = gateway.admin { services.append(admin) }
            logger.info(
                "gateway starting",
                metadata: [
                    "bff.listen": "\(configuration.bff.server.host):\(configuration.bff.server.port)",
                    "bff.public_origin": .string(gateway.bff.publicOrigin),
                    "bff.issuer": .string(configuration.bff.oidc.issuer),
                    "bff.store": .string(configuration.bff.session.store.description),
                ])
            try await CommandSupport.run(services, grace: configuration.bff.server.shutdownGrace, logger: logger)
        } catch {
            await store?.shutdown()
            try? await tls.shutdown()
            try? await CommandSupport.shutdown([client])
            throw error
        }
        try await tls.shutdown()
        try await CommandSupport.shutdown([client])
    }
}
