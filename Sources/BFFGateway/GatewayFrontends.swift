import BFFCore
import BFFForwarder
import BFFHummingbird
import BFFOIDC
import BFFWebSocket
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization
import Tracing

/// One frontend the gateway serves (SPEC §11.3): its BFF (own IdP, client, cookies, routes) and
/// the router built for it.
struct GatewayFrontend: Sendable {
    /// `frontends[].name`; empty for a gateway without `frontends:`.
    let name: String
    let match: FrontendMatch
    let bff: BFF
    let responder: RouterResponder<BasicBFFRequestContext>
    /// Its WebSocket routes and dev-server HMR socket.
    let webSockets: BFFWebSocketBridge
    /// A digest of its effective configuration: a reload keeps a frontend whose digest is the same.
    let digest: String
}

/// The frontends in service and which one a request belongs to. One decision for every adapter:
/// the router's responder, the event-loop API handler (``APICallFrontends``) and WebSocket
/// handshakes all select through here. Replaced as a whole by a reload: a request keeps the
/// frontend it was given.
final class ActiveFrontends: Sendable {
    struct Snapshot: Sendable {
        let selector: FrontendSelector
        let frontends: [GatewayFrontend]
        /// The file the configuration came from (`GET /config`); nil when built in code.
        let source: ConfigurationSource?

        init(_ frontends: [GatewayFrontend], source: ConfigurationSource?) {
            self.selector = FrontendSelector(frontends.map(\.match))
            self.frontends = frontends
            self.source = source
        }

        func select(host: String?, path: some StringProtocol) -> GatewayFrontend? {
            selector.select(host: host, path: path).map { frontends[$0] }
        }
    }

    private let snapshot: Mutex<Snapshot>
    /// The event-loop handler's view of the same frontends (nil when API calls go through the router).
    let apiCalls: APICallFrontends?
    /// Whether the listener was built with WebSocket upgrades (some frontend had a WebSocket route
    /// or a dev server): a reload cannot add the first one.
    let upgrades: Bool

    init(_ frontends: [GatewayFrontend], source: ConfigurationSource?, apiCalls: APICallFrontends?) {
        self.snapshot = Mutex(Snapshot(frontends, source: source))
        self.apiCalls = apiCalls
        self.upgrades = frontends.contains { !$0.webSockets.isEmpty }
    }

    var current: Snapshot { snapshot.withLock { $0 } }

    /// The frontend of a request to `host` (the `Host` header / `:authority`) for `path`.
    func select(host: String?, path: some StringProtocol) -> GatewayFrontend? {
        current.select(host: host, path: path)
    }

    /// Serves new requests with `frontends`, loaded from `source`.
    func replace(_ frontends: [GatewayFrontend], source: ConfigurationSource?) {
        let new = Snapshot(frontends, source: source)
        snapshot.withLock { $0 = new }
        apiCalls?.replace(frontends.map { ($0.match, $0.bff) })
    }

    /// The `shouldUpgrade` function of the gateway's server: the handshake's frontend's bridge
    /// decides; without a frontend it is not upgraded (and the responder answers no-frontend).
    var shouldUpgrade:
        @Sendable (HTTPRequest, any Channel, Logger) async -> ShouldUpgradeResult<
            WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
        >
    {
        { [self] head, channel, logger in
            // Two Host fields: not upgraded (the request then goes on as HTTP: 400).
            guard GatewayHeaderNames.host.map({ head.headerFields[$0] == nil }) ?? true,
                let frontend = select(host: head.authority, path: (head.path ?? "").prefix { $0 != "?" })
            else { return .dontUpgrade }
            return await frontend.webSockets.shouldUpgrade(head, channel: channel, logger: logger)
        }
    }
}

/// The public listener's responder: hands each request to its frontend's router; a request of no
/// frontend gets `urn:bff:problem:no-frontend` (404) and touches no session.
struct FrontendResponder: HTTPResponder {
    typealias Context = BasicBFFRequestContext
    let frontends: ActiveFrontends
    /// Where the gateway's own answers to requests of no frontend are counted (route
    /// `unmatched`).
    let unrouted: BFFMetrics

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        // RFC 9112 §3.2: a request with more than one Host is refused (the first becomes
        // `:authority`; a second one stays a field). The API handler passes such requests here.
        if let host = GatewayHeaderNames.host, request.headers[host] != nil {
            return answer(.badRequest, request, since: started)
        }
        guard let frontend = frontends.select(host: request.head.authority, path: request.uri.path) else {
            return answer(.noFrontend, request, since: started)
        }
        return try await frontend.responder.respond(to: request, context: context)
    }

    /// A problem of no frontend's, counted as `unmatched`.
    private func answer(_ problem: Problem, _ request: Request, since started: ContinuousClock.Instant) -> Response {
        unrouted.request(
            route: BFF.routeLabel(nil), method: request.method.rawValue, status: problem.status,
            duration: ContinuousClock.now - started)
        return Self.problem(problem)
    }

    static func problem(_ problem: Problem) -> Response {
        var response = BFFResponses.problem(problem)
        response.headers[.xContentTypeOptions] = "nosniff"
        return response
    }
}

/// Builds each frontend's BFF and router from what the frontends share (keys, HTTP clients, the
/// store, metrics, tracing). A reload uses the same builder for its new frontends.
struct FrontendBuilder: Sendable {
    var keyRing: KeyRing
    let http: any OIDCHTTPClient
    let upstream: (any UpstreamTransport)?
    let store: (any SessionStore)?
    let revocationFeed: (any SharedRevocationFeed)?
    let time: any TimeSource
    let logger: Logger
    let metrics: GatewayMetrics
    let accessLogger: Logger?
    let tracer: (any Tracer)?
    let apiCallObserver: APICallObserver?
    let configureRouter: @Sendable (Router<BasicBFFRequestContext>, BFF) -> Void
    /// Revocation records and consumed login states, shared by every frontend and every reload.
    let shared: BFFSharedState

    /// The configuration's frontends: its `frontends:` or, without them, one serving everything.
    func frontends(for configuration: GatewayConfiguration) throws -> [GatewayFrontend] {
        try effectiveFrontends(configuration).map { try frontend(name: $0.name, match: $0.match, settings: $0.bff) }
    }

    /// Each frontend's settings as its BFF gets them.
    func effectiveFrontends(_ configuration: GatewayConfiguration) -> [FrontendSettings] {
        if configuration.frontends.isEmpty {
            return [FrontendSettings(name: "", match: FrontendMatch(), bff: configuration.bff)]
        }
        // Cookies of one frontend are never forwarded to another's upstreams either.
        let cookieNames = configuration.frontends.map(\.bff.session.cookieName)
        return configuration.frontends.map { frontend in
            var frontend = frontend
            frontend.bff.session.siblingCookieNames = cookieNames.filter { $0 != frontend.bff.session.cookieName }
            return frontend
        }
    }

    /// The upstream transport that `key` (a configured feature) needs.
    func requireUpstream(for key: String) throws -> any UpstreamTransport {
        guard let upstream else {
            throw ProblemList([
                .init(path: key, message: "no upstream transport was given", fix: "pass one to Gateway.build")
            ])
        }
        return upstream
    }

    /// A digest of everything a frontend's BFF is built from (secrets included, so a changed
    /// client secret is a change; only the digest is kept).
    static func digest(_ settings: BFFConfiguration) -> String {
        SHA256.hash(data: Data(String(reflecting: settings).utf8)).map { String(format: "%02x", $0) }.joined()
    }

    func frontend(name: String, match: FrontendMatch, settings: BFFConfiguration) throws -> GatewayFrontend {
        var logger = logger
        if !name.isEmpty { logger[metadataKey: "bff.frontend"] = .string(name) }
        var bff = try BFF(
            configuration: settings, keyRing: keyRing, http: http, store: store, revocationFeed: revocationFeed,
            time: time, logger: logger, metrics: name.isEmpty ? metrics.metrics : metrics.metrics.forFrontend(name),
            accessLogger: accessLogger, tracer: tracer,
            shared: shared)
        bff.apiCallObserver = apiCallObserver
        let router = Router(context: BasicBFFRequestContext.self)
        // First: it times every request the router answers (API calls report themselves).
        router.add(middleware: BFFMetricsMiddleware(bff: bff))
        if !settings.apis.isEmpty {
            let upstream = try requireUpstream(for: "apis")
            // Outermost: proxied responses pass through unchanged (no headers added by the gateway).
            router.add(middleware: RemoteAPIMiddleware(bff: bff, transport: upstream))
        }
        router.add(middleware: SecurityHeadersMiddleware())
        // A path-prefix frontend's files are served below its prefix (`/docs/app.js` is `root/app.js`).
        let prefix = match.pathPrefix ?? ""
        if let indexURL = settings.staticFiles.indexURL {
            // Navigations get the fetched index.html; other files come from root, else its origin.
            let document = IndexDocument(url: indexURL, http: http, time: time, logger: logger)
            router.add(middleware: IndexDocumentMiddleware(document: document, bff: bff))
            if settings.staticFiles.root == nil, let origin = WebURL(indexURL)?.origin {
                router.add(
                    middleware: DevServerMiddleware(
                        devServer: origin, transport: try requireUpstream(for: "static.indexUrl"), bff: bff,
                        logger: logger))
            }
        }
        if let root = settings.staticFiles.root {
            if settings.staticFiles.indexURL == nil {
                router.add(
                    middleware: PathPrefixed(
                        prefix: prefix,
                        SPAFallbackMiddleware(
                            root: root, fallback: settings.staticFiles.fallback,
                            excludedPrefixes: [String(settings.managementPrefix.dropFirst(prefix.count)), "/api"])))
            }
            router.add(
                middleware: PathPrefixed(
                    prefix: prefix,
                    FileMiddleware<BasicBFFRequestContext, LocalFileSystem>(
                        root, searchForIndexHtml: true, logger: logger)))
        }
        if let devServer = settings.staticFiles.devServer {
            router.add(
                middleware: DevServerMiddleware(
                    devServer: devServer, transport: try requireUpstream(for: "static.devServer"), bff: bff,
                    logger: logger))
        }
        bff.addManagementRoutes(to: router)
        configureRouter(router, bff)
        var webSockets = BFFWebSocketBridge(bff: bff)
        webSockets.devServer = settings.staticFiles.devServer  // its HMR socket
        return GatewayFrontend(
            name: name, match: match, bff: bff, responder: router.buildResponder(), webSockets: webSockets,
            digest: Self.digest(settings))
    }
}

/// Runs `inner` on requests below `prefix` as if the prefix were not there (a path-prefix
/// frontend's static files); other requests go on untouched. An empty prefix runs `inner` on all.
struct PathPrefixed<Inner: RouterMiddleware>: RouterMiddleware where Inner.Context == BasicBFFRequestContext {
    typealias Context = BasicBFFRequestContext
    let prefix: String
    let inner: Inner

    init(prefix: String, _ inner: Inner) {
        self.prefix = prefix
        self.inner = inner
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard !prefix.isEmpty else { return try await inner.handle(request, context: context, next: next) }
        guard let target = request.head.path, target.hasPrefix(prefix) else { return try await next(request, context) }
        let rest = target.dropFirst(prefix.count)
        guard rest.isEmpty || rest.first == "/" || rest.first == "?" else { return try await next(request, context) }
        var head = request.head
        head.path = rest.first == "/" ? String(rest) : "/" + rest
        let stripped = Request(head: head, body: request.body)
        return try await inner.handle(stripped, context: context) { _, context in try await next(request, context) }
    }
}
