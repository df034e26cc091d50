import ArgumentParser
import AsyncHTTPClient
import BFFCore
import BFFForwarder
import BFFOIDC
import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
        let tls = try TLSUpstreams(caFiles: configuration.effectiveFrontends.flatMap(\.apis).compactMap(\.caFile))
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
            for bff in gateway.bffs { try await bff.restoreRevocations() }
            let reloader = gateway.reloader(path: config, logger: logger)
            var services: [any Service] = [gateway.service, forwarder]
            services += gateway.maintenance(reloader: reloader, watch: configuration.watch ? .seconds(2) : nil)
            // `bff reload` finds this process here; from now on SIGHUP must not end it (its default
            // action), also before the reload service installs its handler.
            signal(SIGHUP, SIG_IGN)
            let pidFile = PIDFile(directory: configuration.dataDirectory)
            try pidFile.write()
            defer { pidFile.remove() }
            if let store { services.append(store) }
            if let admin = gateway.admin { services.append(admin) }
            logger.info(
                "gateway starting",
                metadata: [
                    "bff.listen": "\(configuration.bff.server.host):\(configuration.bff.server.port)",
                    "bff.public_origin": .string(gateway.bffs.map(\.publicOrigin).joined(separator: " ")),
                    "bff.issuer": .string(
                        Set(gateway.bffs.map(\.configuration.oidc.issuer)).sorted().joined(separator: " ")),
                    "bff.frontends": .string(configuration.frontends.map(\.name).joined(separator: " ")),
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
