import AsyncHTTPClient
import BFFCore
import BFFForwarder
import BFFHummingbird
import BFFOIDC
import BFFSessionStorePostgres
import BFFSessionStoreSQLite
import BFFWebSocket
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

/// The gateway as a set of services: the public application and the admin listener.
struct Gateway {
    /// The frontends served (one unless the configuration has `frontends:`).
    let frontends: ActiveFrontends
    /// Builds frontends (at start, and again for a reload).
    let builder: FrontendBuilder
    /// The configuration the gateway was built from, and its keys.
    let configuration: GatewayConfiguration
    let keyRing: KeyRing
    let application: Application<FrontendResponder>
    let admin: Application<RouterResponder<BasicRequestContext>>?
    let store: (any SessionStore)?
    /// The public listener's open client connections.
    let clients: OpenConnections
    let forwarder: NIOUpstream?
    /// What `/metrics` on the admin listener serves.
    let metrics: GatewayMetrics
    /// Batches and exports spans (with `telemetry`).
    /// The span exporter (with a tracer): stopped after the public listener has drained.
    let spanExporter: OTLPExporter?

    /// The first frontend's BFF (the only one without `frontends:`).
    var bff: BFF { frontends.current.frontends[0].bff }
    /// Every frontend's BFF.
    var bffs: [BFF] { frontends.current.frontends.map(\.bff) }

    /// The public application with its shutdown bounded by `server.shutdownGrace` (run this one).
    var service: any Service {
        let listener = BoundedShutdown(
            application: application, grace: bff.configuration.server.shutdownGrace, clients: clients,
            forwarder: forwarder)
        guard let spanExporter else { return listener }
        return ListenerWithSpanExporter(listener: listener, exporter: spanExporter)
    }
    /// Background services to run beside the application: refresh-token revocation and, for
    /// server-side stores, expired-session cleanup.
    var maintenance: [any Service] {
        // The BFF's (measured) store: cleanup's remove_expired calls are counted.
        maintenance(reloader: nil)
    }

    /// A reloader of the file at `path` into this gateway.
    func reloader(path: String, logger: Logger) -> ConfigurationReloader {
        ConfigurationReloader(
            path: path, configuration: configuration, keyRing: keyRing, builder: builder, frontends: frontends,
            logger: logger)
    }

    /// ``maintenance``, with reloads (SIGHUP, `config.watch`) when `reloader` is given.
    func maintenance(reloader: ConfigurationReloader?, watch: Duration? = nil) -> [any Service] {
        // Each frontend's revoker, started and drained as reloads add and retire frontends.
        var services: [any Service] = [
            FrontendServices(frontends: frontends, reloader: reloader, watch: watch, logger: builder.logger)
        ]
        // Cleanup asks the frontends in service each pass (each revokes its own expired sessions' tokens).
        services.append(
            SessionCleanupService(bff: bff, store: bff.sessionStore) { [frontends] in
                frontends.current.frontends.map(\.bff)
            })
        // One revocation list for every frontend (BFFSharedState): one sync service.
        if let feed = bff.revocationFeed { services.append(RevocationSyncService(bff: bff, feed: feed)) }
        return services
    }

    /// Builds the gateway through the same code path `bff serve`, `bff demo` and the tests use.
    /// - Parameter configureRouter: adds app-specific routes (the demo's local API) after the BFF's
    ///   (to every frontend's router).
    static func build(
        configuration: GatewayConfiguration, keyRing: KeyRing, http: any OIDCHTTPClient,
        upstream: (any UpstreamTransport)? = nil, store: (any SessionStore)? = nil,
        revocationFeed: (any SharedRevocationFeed)? = nil, time: any TimeSource = SystemTimeSource(), logger: Logger,
        apiFastPath: Bool = true, apiCallObserver: APICallObserver? = nil, recordMetrics: Bool = true,
        configureRouter: @escaping @Sendable (Router<BasicBFFRequestContext>, BFF) -> Void = { _, _ in }
    ) throws -> Gateway {
        let settings = configuration.bff
        let store: (any SessionStore)? =
            switch settings.session.store {
            case .memory: store ?? MemorySessionStore()
            case .cookie: nil
            default: store
            }
        if settings.session.store.isServerSide && store == nil {
            throw ProblemList([
                .init(
                    path: "session.store", message: "no \(settings.session.store) store was opened",
                    fix: "open it with Gateway.openStore")
            ])
        }
        let metrics = GatewayMetrics(recording: recordMetrics)
        let tracing = try GatewayTracing.make(configuration.telemetry, logger: logger)
        let builder = FrontendBuilder(
            keyRing: keyRing, http: http, upstream: upstream, store: store,
            revocationFeed: settings.session.store == .cookie ? revocationFeed : nil, time: time, logger: logger,
            metrics: metrics, accessLogger: configuration.logging.access ? accessLogger(logger) : nil,
            tracer: tracing?.tracer, apiCallObserver: apiCallObserver, configureRouter: configureRouter,
            shared: BFFSharedState(
                retention: settings.session.absoluteTimeout,
                published: settings.session.store == .cookie && revocationFeed != nil))
        let frontends = try builder.frontends(for: configuration)
        let clients = OpenConnections()
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [clients.tracker()],
            idleTimeout: .seconds(Int64(settings.server.idleTimeout.components.seconds)),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: settings.server.maxHeaderBytes,
                maxHeaderListSize: settings.server.maxHeaderBytes))
        // Every API call is decided and forwarded on the event loop (unless switched off).
        let forwarder = apiFastPath ? upstream as? NIOUpstream : nil
        let apiCalls = forwarder.map {
            APICallFrontends(frontends.map { ($0.match, $0.bff) }, forwarder: $0, idleTimeout: http1.idleTimeout)
        }
        let active = ActiveFrontends(frontends, source: configuration.source, apiCalls: apiCalls)
        let server: HTTPServerBuilder
        if active.upgrades {
            // WebSocket routes need the upgrade-capable channel; upgrades go to the frontend's bridge.
            server = BFFWebSocketBridge.server(
                configuration: http1, apiCalls: apiCalls.map(APICallHandlers.init(frontends:)),
                shouldUpgrade: active.shouldUpgrade)
        } else if let apiCalls, frontends.contains(where: { !$0.bff.configuration.apis.isEmpty }) {
            server = APICallHandlers.http1Server(configuration: http1, frontends: apiCalls)
        } else {
            server = .http1(configuration: http1)
        }
        let application = Application(
            responder: FrontendResponder(
                frontends: active,
                // Requests of no frontend: labelled frontend="" when there are several (every
                // family then has the label), unlabelled otherwise.
                unrouted: configuration.frontends.isEmpty ? metrics.metrics : metrics.metrics.forFrontend("")),
            server: server,
            configuration: .init(address: .hostname(settings.server.host, port: settings.server.port), serverName: nil),
            logger: logger)
        var admin: Application<RouterResponder<BasicRequestContext>>?
        if let listen = settings.admin.listen, let (host, port) = GatewayConfigurationLoader.parseListen(listen) {
            admin = makeAdmin(
                frontends: active, store: store, forwarder: upstream as? NIOUpstream, metrics: metrics,
                host: host, port: port, logger: logger)
        }
        return Gateway(
            frontends: active, builder: builder, configuration: configuration, keyRing: keyRing,
            application: application, admin: admin, store: store, clients: clients,
            forwarder: upstream as? NIOUpstream, metrics: metrics, spanExporter: tracing?.exporter)
    }

    /// The access log: the gateway's logger, its lines marked `bff.log: access`.
    static func accessLogger(_ logger: Logger) -> Logger {
        var access = logger
        access[metadataKey: "bff.log"] = "access"
        return access
    }

    static func makeAdmin(
        frontends: ActiveFrontends, store: (any SessionStore)?, forwarder: NIOUpstream?, metrics: GatewayMetrics,
        host: String, port: Int, logger: Logger
    ) -> Application<RouterResponder<BasicRequestContext>> {
        let router = Router()
        router.get("/config") { _, _ in
            // Which configuration runs: its file's hash and load time, never a value from it.
            let running = frontends.current
            guard let source = running.source else {
                return Response(
                    status: .notFound, headers: [.contentType: "text/plain", .cacheControl: "no-store"],
                    body: .init(byteBuffer: ByteBuffer(string: "configured in code, not from a file\n")))
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string: source.json(frontends: running.frontends.map(\.name).filter { !$0.isEmpty }))
                ))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        bytes: metrics.scrape(
                            frontends: frontends.current.frontends.map { ($0.name, $0.bff) }, forwarder: forwarder))))
        }
        router.get("/healthz") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            // The checks run side by side, each within a second, whatever hangs behind it (a stopped
            // database, an IdP that does not answer). A slow IdP warm-up goes on in the background
            // and is cached for the next probe.
            let bffs = frontends.current.frontends.map(\.bff)
            async let identityProvider: String? = {
                // Every frontend's IdP (each has its own metadata and keys), side by side.
                await withTaskGroup(of: String?.self) { group in
                    for bff in bffs {
                        group.addTask {  // justified: a structured child, one per frontend's IdP
                            do {
                                try await withStoreDeadline(.seconds(1), cancelsBody: false) {
                                    try await bff.provider.warmUp()
                                }
                            } catch {
                                return "identity provider \(bff.configuration.oidc.issuer): metadata or keys not "
                                    + "loaded within 1 s or unavailable"
                            }
                            // Does the IdP accept the client's credentials? (Probed until it does,
                            // at most every 30 s; the deadline wraps errors, so the body answers.)
                            let oidc = bff.configuration.oidc
                            do {
                                return try await withStoreDeadline(.seconds(1), cancelsBody: false) {
                                    () async -> String? in
                                    switch await bff.tokens.verifyClientAuthentication() {
                                    case .accepted, .undetermined: return nil
                                    case .refused:
                                        return "identity provider \(oidc.issuer) refused the client \(oidc.clientID) "
                                            + "(\(oidc.clientAuth)): check "
                                            + (oidc.clientAuth == .privateKeyJWT
                                                ? "that oidc.clientKey's public JWK is registered for the client"
                                                : "oidc.clientSecret and the client's token_endpoint_auth_method")
                                    case .unavailable(let why):
                                        return "identity provider \(oidc.issuer): \(why)"
                                    }
                                }
                            } catch {
                                return "identity provider \(oidc.issuer): token endpoint did not answer within 1 s"
                            }
                        }
                    }
                    var reasons: [String] = []
                    for await reason in group { if let reason { reasons.append(reason) } }
                    return reasons.isEmpty ? nil : reasons.sorted().joined(separator: "\n")
                }
            }()
            async let sessionStore: String? = {
                guard let store = bffs[0].sessionStore ?? store else { return nil }  // measured: ping counts
                do {
                    try await withStoreDeadline(.seconds(1)) { try await store.ping() }
                    return nil
                } catch {
                    return "\(error)"
                }
            }()
            var reasons = [await identityProvider, await sessionStore].compactMap { $0 }
            for upstream in forwarder?.saturatedUpstreams ?? [] {
                reasons.append("upstream \(upstream): every pooled connection stuck")
            }
            let ready = reasons.isEmpty
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: ready ? "ready\n" : reasons.joined(separator: "\n") + "\n")))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil), logger: logger)
    }

    /// Opens the configured persistent store (SQLite or PostgreSQL); nil for memory and cookie
    /// modes. The store is also a `Service` (it closes at shutdown) to run beside the gateway.
    static func openStore(
        for configuration: GatewayConfiguration, time: any TimeSource = SystemTimeSource(), logger: Logger
    ) async throws -> (any PersistentSessionStore)? {
        switch configuration.bff.session.store {
        case .sqlite:
            return try await SQLiteSessionStore.open(path: configuration.effectiveSQLitePath, logger: logger)
        case .cookie where configuration.postgres == nil:
            // Cookie mode keeps its revocation records durably in a small file of its own.
            return try await SQLiteSessionStore.open(path: configuration.revocationsPath, logger: logger)
        case .postgres, .cookie:
            // Cookie mode uses PostgreSQL only to share revocation records between instances.
            guard let postgres = configuration.postgres else {
                throw ProblemList([
                    .init(path: "session.postgres.url", message: "no database URL", fix: "set BFF_POSTGRES_URL")
                ])
            }
            return try await PostgresSessionStore.open(configuration: postgres, logger: logger)
        default:
            return nil
        }
    }

    /// The key ring: configured keys, else a key generated once and kept in `dataDirectory`.
    static func keyRing(for configuration: GatewayConfiguration, logger: Logger) throws -> KeyRing {
        if !configuration.bff.keys.isEmpty { return try KeyRing(keys: configuration.bff.keys) }
        let directory = configuration.dataDirectory
        let path = directory + "/generated-key.json"
        let manager = FileManager.default
        if let data = manager.contents(atPath: path),
            let object = try? JSONDecoder().decode([String: String].self, from: data),
            let id = object["id"], let secret = object["secret"].flatMap(GatewayConfigurationLoader.decodeKey)
        {
            logger.warning(
                "no keys configured: using the generated key in the data directory; configure keys: for production (see `bff keys generate`)",
                metadata: ["bff.key_file": .string(path)])
            return try KeyRing(keys: [KeyRing.Key(id: id, secret: secret)])
        }
        try manager.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let secret = SystemSecureRandom().bytes(32)
        let id = "generated-\(SystemSecureRandom().token(byteCount: 4))"
        let json = "{\"id\":\"\(id)\",\"secret\":\"\(Base64URL.encode(secret))\"}\n"
        guard manager.createFile(atPath: path, contents: Data(json.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ProblemList([
                .init(
                    path: "keys", message: "cannot write \(path)", fix: "configure keys: or make \(directory) writable")
            ])
        }
        logger.warning(
            "no keys configured: generated a sealing key and stored it in the data directory; configure keys: for production (see `bff keys generate`)",
            metadata: ["bff.key_file": .string(path)])
        return try KeyRing(keys: [KeyRing.Key(id: id, secret: secret)])
    }
}

/// Baseline security headers on every response that does not set its own.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var response = try await next(request, context)
        if response.headers[.xContentTypeOptions] == nil { response.headers[.xContentTypeOptions] = "nosniff" }
        for (name, value) in [
            (GatewayHeaderNames.referrerPolicy, "no-referrer"), (GatewayHeaderNames.xFrameOptions, "SAMEORIGIN"),
        ] {
            if let name, response.headers[name] == nil { response.headers[name] = value }
        }
        return response
    }
}

/// Serves the SPA's `index.html` for HTML navigations that match no file or route (history routing).
struct SPAFallbackMiddleware<Context: RequestContext>: RouterMiddleware {
    let indexHTML: ByteBuffer?
    let excludedPrefixes: [String]

    init(root: String, fallback: String, excludedPrefixes: [String]) {
        let path = root.hasSuffix("/") ? root + fallback : root + "/" + fallback
        self.indexHTML = FileManager.default.contents(atPath: path).map { ByteBuffer(bytes: Array($0)) }
        self.excludedPrefixes = excludedPrefixes
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            let response = try await next(request, context)
            guard response.status == .notFound, let fallback = fallbackResponse(request) else { return response }
            return fallback
        } catch let error as HTTPError where error.status == .notFound {
            if let fallback = fallbackResponse(request) { return fallback }
            throw error
        }
    }

    func fallbackResponse(_ request: Request) -> Response? {
        guard let indexHTML, request.method == .get || request.method == .head,
            request.headers[.accept]?.contains("text/html") == true,
            !excludedPrefixes.contains(where: { request.uri.path == $0 || request.uri.path.hasPrefix($0 + "/") })
        else { return nil }
        return Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
            body: request.method == .head ? .init() : .init(byteBuffer: indexHTML))
    }
}

/// Header names HTTPTypes does not predefine (optional so no path can trap).
enum GatewayHeaderNames {
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")
    static let host = HTTPField.Name("Host")
}

/// A store that outlives the process (SQLite, PostgreSQL): a `Service` that closes it at shutdown,
/// and `shutdown()` for commands that use it without a service group.
protocol PersistentSessionStore: SessionStore, Service {
    func shutdown() async
}

extension SQLiteSessionStore: PersistentSessionStore {
    func shutdown() async { try? await close() }
}

extension PostgresSessionStore: PersistentSessionStore {
    func shutdown() async { await close() }
}
