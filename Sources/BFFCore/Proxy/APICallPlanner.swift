import Logging
import Synchronization

/// Decides every API call (SPEC §8), for every adapter: path safety, route, WebSocket handshake
/// rules, anti-forgery, transfer coding, session, the route's token, the upstream URL and the
/// headers that go up. It answers at once when it can (`.forward`, `.refuse`, `.pass`) and hands
/// back `.suspend` when the call needs I/O — a store that cannot answer synchronously, a refresh,
/// a client-credentials token, a sliding renewal to write — whose `resume()` yields one of the
/// others. No server or client framework types: the adapters translate.
public final class APICallPlanner: Sendable {
    let routes: RouteTable
    /// Aligned with `routes.entries`; references, so a request holds its route with one retain.
    let planned: [PlannedRoute]
    let sessions: SessionManager
    let tokens: any APITokenSource
    let antiForgery: AntiForgeryPolicy
    /// Lower case; nil when the configured name is unusable (every call is then refused).
    let antiForgeryHeader: String?
    let policy: HeaderPolicy
    let trusted: [IPAddressRange]
    let publicOrigin: String
    let forwardedProto: String
    let forwardedHost: String
    let logger: Logger
    /// `jti`s of DPoP proofs.
    let random: any SecureRandom
    /// `oidc.dpop: required`: user tokens go out DPoP-bound or not at all.
    let requireDPoP: Bool
    /// The `DPoP-Nonce` each upstream origin last asked for (one entry per route's upstream).
    let dpopNonces = Mutex<[String: String]>([:])

    /// A planner for `routes`.
    public init(
        routes: [APIRouteConfiguration], sessions: SessionManager, tokens: any APITokenSource,
        antiForgery: AntiForgeryPolicy, headerPolicy: HeaderPolicy, trustedProxies: [IPAddressRange],
        publicOrigin: String, logger: Logger, random: any SecureRandom = SystemSecureRandom(),
        requireDPoP: Bool = false
    ) {
        self.random = random
        self.requireDPoP = requireDPoP
        self.routes = RouteTable(routes: routes)
        self.planned = self.routes.entries.map { PlannedRoute($0, tokens: tokens) }
        self.sessions = sessions
        self.tokens = tokens
        self.antiForgery = antiForgery
        let header = antiForgery.headerName.lowercased()
        self.antiForgeryHeader = header.isEmpty ? nil : header
        self.policy = headerPolicy
        self.trusted = trustedProxies
        self.publicOrigin = publicOrigin
        let origin = WebURL(publicOrigin)
        self.forwardedProto = origin?.scheme ?? "https"
        if let origin {
            self.forwardedHost = origin.port.map { "\(origin.host):\($0)" } ?? origin.host
        } else {
            self.forwardedHost = ""
        }
        self.logger = logger
    }

    /// Whether any route is a WebSocket route.
    public var hasWebSocketRoutes: Bool { routes.entries.contains { $0.route.websocket } }

    /// Whether `path` (no query) is under an API route.
    public func isAPIPath(_ path: some StringProtocol) -> Bool { routes.matchIndex(path: String(path)) != nil }

    /// Whether `address` is one of `server.trustedProxies` (whose forwarding and trace headers are
    /// believed).
    public func isTrustedProxy(_ address: String?) -> Bool {
        guard !trusted.isEmpty, let address else { return false }
        return trusted.contains { $0.contains(address) }
    }

    /// The decision for `request`.
    public func plan(_ request: APICallRequest) -> APICallDecision {
        let target = request.target
        guard target.utf8.first == UInt8(ascii: "/") else { return .pass }  // `*`, absolute form: not ours
        let path: Substring
        let query: Substring?
        if let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = target[..<mark]
            query = target[target.index(after: mark)...]
        } else {
            path = target[...]
            query = nil
        }
        guard PathSanitizer.isSafe(path), !target.utf8.contains(UInt8(ascii: "#")) else {
            return refuse(.invalidPath, api: nil)
        }
        guard let (index, remainder) = routes.matchIndex(path: String(path)) else { return .pass }
        let entry = planned[index]
        let api = entry.prefix

        // One pass over the fields.
        var cookies: [String] = []
        var connection: [String] = []
        var origins: [String] = []
        var antiForgeryValues: [String] = []
        var secFetchSite: [String] = []
        var transferEncoding: [String] = []
        var contentLength: String?
        var expectsContinue = false
        for field in request.fields {
            // HTTP parsers refuse control characters already; checked again because these values
            // go upstream without a second validation pass, whatever adapter received them.
            guard Self.isPlain(field.value) else { return refuse(.badRequest, api: api) }
            switch field.lowercasedName {
            case "cookie": cookies.append(field.value)
            case "connection": connection.append(field.value)
            case "origin": origins.append(Self.trimmed(field.value))
            case "sec-fetch-site": secFetchSite.append(Self.trimmed(field.value))
            case "transfer-encoding": transferEncoding.append(field.value)
            case "content-length": contentLength = field.value
            case "expect": expectsContinue = field.value.lowercased() == "100-continue"
            default:
                if field.lowercasedName == antiForgeryHeader { antiForgeryValues.append(Self.trimmed(field.value)) }
            }
        }

        if entry.route.websocket {
            // Browsers send `Origin` on every handshake and cannot forge it; they cannot send the
            // anti-forgery header. A plain request gets the same checks, so it can say why a
            // handshake would be refused (426 once nothing else is wrong).
            guard origins.count == 1, origins[0] == publicOrigin else {
                logger.info("WebSocket handshake refused: foreign or missing Origin", metadata: ["bff.api": "\(api)"])
                return refuse(.webSocketOrigin, api: api)
            }
        } else {
            guard antiForgeryHeader != nil,
                antiForgery.allows(header: antiForgeryValues, secFetchSite: secFetchSite, origin: origins)
            else { return refuse(.antiforgery, api: api) }
            guard HeaderPolicy.acceptsTransferEncoding(transferEncoding) else {
                return refuse(.unsupportedTransferCoding, api: api)
            }
        }
        let body: APIBodyFraming
        if !transferEncoding.isEmpty {
            body = .chunked
        } else if let contentLength {
            guard let length = Int(contentLength), length >= 0 else { return refuse(.badRequest, api: api) }
            body = .length(length)
        } else {
            body = .none
        }

        // A handshake must be exactly one: `Connection: upgrade` (without it HTTP parsers read on
        // and a pipelined request would reach the WebSocket frame decoder) and no body (whose
        // bytes would be taken for frames).
        if entry.route.websocket, request.isUpgrade {
            guard HeaderPolicy.connectionTokens(connection).contains("upgrade"), !body.hasBody else {
                logger.info("WebSocket handshake refused: malformed", metadata: ["bff.api": "\(api)"])
                return refuse(.badRequest, api: api)
            }
        }

        var pathAndQuery = entry.upstreamPath + remainder
        if pathAndQuery.isEmpty { pathAndQuery = "/" }
        if let query { pathAndQuery += "?" + query }
        let skeleton = Skeleton(
            request: request, entry: entry, pathAndQuery: pathAndQuery,
            connection: connection, body: body, expectsContinue: expectsContinue,
            upgradeMissing: entry.route.websocket && !request.isUpgrade)

        // The route's token, now if it is at hand; otherwise suspended. (`entry.route` is read in
        // place: a local copy of the configuration retained each of its fields.)
        let cookieHeader = CookieHeader(fields: cookies)
        var loaded: LoadedSession?
        if entry.route.token.usesUserToken {
            switch sessions.loadImmediately(cookies: cookieHeader) {
            case .unavailable:
                return .suspend(
                    APICallSuspension(api: api) {
                        await self.planLoadingSession(skeleton, cookies: cookieHeader)
                    })
            case .anonymous: loaded = nil
            case .session(let session): loaded = session
            }
        }
        if entry.route.requiresStepUp, let session = loaded?.session,
            let problem = StepUp.problem(route: entry.route, session: session, now: sessions.now)
        {
            return refuse(problem, api: api)
        }
        if let credential = immediateCredential(for: entry, session: loaded) {
            return decision(skeleton, credential: credential, cookies: [], session: loaded?.session)
        }
        return .suspend(
            APICallSuspension(api: api) { [loaded] in
                await self.planWithCredentials(skeleton, session: loaded, cookies: cookieHeader)
            })
    }

    /// A route as the planner uses it.
    final class PlannedRoute: Sendable {
        let prefix: String
        let route: APIRouteConfiguration
        let upstream: APIUpstream
        /// The upstream path without its trailing slash.
        let upstreamPath: String
        /// `route.heldTokenKey`, once.
        let heldTokenKey: String?
        /// Whether the app supplies this route's token (library mode's `tokenRetrievers`).
        let hasRetriever: Bool

        init(_ entry: RouteTable.Entry, tokens: any APITokenSource) {
            self.prefix = entry.prefix
            self.route = entry.route
            self.upstream = APIUpstream(entry.upstream)
            self.upstreamPath = entry.upstreamPath
            self.heldTokenKey = entry.route.heldTokenKey
            self.hasRetriever = tokens.retriever(for: entry.route) != nil
        }
    }

    /// What a suspended call needs besides its credentials.
    struct Skeleton: Sendable {
        let request: APICallRequest
        let entry: PlannedRoute
        let pathAndQuery: String
        let connection: [String]
        let body: APIBodyFraming
        let expectsContinue: Bool
        /// A WebSocket route asked without the upgrade: refused with 426 once everything else passed.
        let upgradeMissing: Bool
    }

    /// The bearer to send, when it is known without I/O: `.some(nil)` for no token; nil when the
    /// call must be suspended (a refresh or renewal is due, a client token must be fetched, or the
    /// route refuses — the async path decides and words every refusal).
    func immediateCredential(for entry: PlannedRoute, session: LoadedSession?) -> APICredential?? {
        if entry.hasRetriever { return nil }  // the app's retriever runs suspended
        var bearer: APICredential?
        if entry.route.token.usesUserToken, let session = session?.session {
            // Due for its idle-timeout renewal (a write): the async path slides it.
            if sessions.isDueForSlide(session) { return nil }
            let (token, expiresAt) =
                if let key = entry.heldTokenKey {
                    (session.tokens.token(for: key)?.accessToken, session.tokens.token(for: key)?.expiresAt)
                } else {
                    (session.tokens.accessToken, session.tokens.accessTokenExpiresAt)
                }
            guard let token, self.tokens.freshness.isFresh(expiresAt: expiresAt, now: sessions.now) else { return nil }
            bearer = .user(token, session: session, resource: entry.heldTokenKey)
            if requireDPoP, bearer?.dpop == nil { return nil }  // the async path refuses it
        } else if entry.route.token.requiresUser {
            return nil
        }
        if bearer == nil, entry.route.token.usesClientToken {
            guard let token = tokens.cachedClientToken(scopes: entry.route.scopes, resource: entry.route.resource)
            else {
                return nil
            }
            bearer = .client(token)
        }
        return .some(bearer)
    }

    func planLoadingSession(_ skeleton: Skeleton, cookies: CookieHeader) async -> APICallDecision {
        let loaded: LoadedSession?
        do {
            loaded = try await sessions.load(cookies: cookies)
        } catch {
            logger.warning("session store unavailable", metadata: ["bff.error": "\(error)"])
            return refuse(.storeUnavailable, api: skeleton.entry.prefix)
        }
        return await planWithCredentials(skeleton, session: loaded, cookies: cookies)
    }

    func planWithCredentials(_ skeleton: Skeleton, session: LoadedSession?, cookies: CookieHeader) async
        -> APICallDecision
    {
        switch await credentials(for: skeleton.entry.route, session: session, cookieHeader: cookies) {
        case .success(let resolved):
            return .forward(
                plan(skeleton, credential: resolved.credential, cookies: resolved.cookies, session: session?.session))
        case .failure(let refusal):
            return .refuse(
                APICallRefusal(problem: refusal.problem, cookies: refusal.cookies, api: skeleton.entry.prefix))
        }
    }

    /// The call may proceed: forwarded, or 426 for a WebSocket route asked without the upgrade.
    func decision(_ skeleton: Skeleton, credential: APICredential?, cookies: [SetCookie], session: Session?)
        -> APICallDecision
    {
        if skeleton.upgradeMissing {
            return .refuse(APICallRefusal(problem: .upgradeRequired, cookies: cookies, api: skeleton.entry.prefix))
        }
        return .forward(plan(skeleton, credential: credential, cookies: cookies, session: session))
    }

    /// Without leading and trailing spaces and tabs (not part of a field value, RFC 9110 §5.5);
    /// every adapter's parser may leave them in.
    static func trimmed(_ value: String) -> String {
        guard let first = value.utf8.first, let last = value.utf8.last else { return value }
        let space = UInt8(ascii: " ")
        let tab = UInt8(ascii: "\t")
        guard first == space || first == tab || last == space || last == tab else { return value }
        return value.trimmingASCIIWhitespace()
    }

    /// No control characters other than horizontal tab.
    static func isPlain(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }
    }

    func refuse(_ problem: Problem, api: String?) -> APICallDecision {
        .refuse(APICallRefusal(problem: problem, cookies: [], api: api))
    }
}
