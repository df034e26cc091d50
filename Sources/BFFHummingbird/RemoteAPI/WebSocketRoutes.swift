import BFFCore
import BFFForwarder
import HTTPTypes
import Hummingbird
import Logging

/// Where an accepted WebSocket handshake is bridged to.
public struct WebSocketUpstream: Sendable {
    /// `ws://` or `wss://` URL, path and query included.
    public let url: String
    /// Headers for the upstream handshake: the route's `Authorization` and `X-Forwarded-*`.
    public let headers: HTTPFields
    /// Headers for the browser's 101 response (a re-issued cookie-mode session).
    public let responseHeaders: HTTPFields
    /// The route's CA file for `wss://` (nil: the system trust store).
    public let caFile: String?
    /// The route prefix (for logs).
    public let route: String
    /// For bridges opened on a session: whether that session is still current (not logged out,
    /// revoked, ended by back-channel logout or `bff sessions revoke`, or expired). A store that
    /// cannot answer counts as "still current": an outage never ends a bridge.
    public let sessionIsCurrent: (@Sendable () async -> Bool)?
}

/// What to do with a request on a WebSocket route.
public enum WebSocketDecision: Sendable {
    /// The path is not a WebSocket route.
    case notAWebSocketRoute
    /// Refused, with the problem to answer when the request stays HTTP.
    case refused(Problem)
    /// Upgrade and bridge.
    case upgrade(WebSocketUpstream)
}

/// The `websocket: true` routes of a BFF: decides handshakes (see ``decision(for:remoteAddress:logger:)``).
public struct WebSocketRoutes: Sendable {
    let bff: BFF
    let proxy: RemoteAPIProxy

    /// The routes of `bff`'s configuration.
    public init(bff: BFF) {
        self.bff = bff
        self.proxy = RemoteAPIProxy(bff: bff, transport: HandshakeOnlyTransport())
    }

    /// Whether any route is a WebSocket route.
    public var isEmpty: Bool { !proxy.routes.entries.contains { $0.route.websocket } }

    /// Decides a WebSocket handshake (SPEC §8): the path must be a `websocket: true` route and
    /// safe; `Origin` must be the public origin exactly (browsers send it on every handshake and
    /// cannot forge it; they cannot send the anti-forgery header); the route's token must be
    /// available — for `user` routes, a valid session.
    public func decision(for head: HTTPRequest, remoteAddress: String?, logger: Logger) async -> WebSocketDecision {
        let bff = self.bff
        let path = head.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 } ?? "/"
        guard PathSanitizer.isSafe(path) else {
            return proxy.routes.match(path: path) == nil ? .notAWebSocketRoute : .refused(.invalidPath)
        }
        guard let (entry, remainder) = proxy.routes.match(path: path), entry.route.websocket else {
            return .notAWebSocketRoute
        }
        guard head.headerFields[.origin] == bff.publicOrigin else {
            logger.info(
                "WebSocket handshake refused: foreign or missing Origin", metadata: ["bff.api": "\(entry.prefix)"])
            return .refused(.webSocketOrigin)
        }
        let cookieHeader = CookieHeader(fields: head.headerFields[values: .cookie])
        let session: LoadedSession?
        do {
            session = try await bff.sessions.load(cookies: cookieHeader)
        } catch {
            logger.warning("WebSocket handshake: session store unavailable", metadata: ["bff.error": "\(error)"])
            return .refused(.storeUnavailable)
        }
        let bearer: String?
        let cookies: [SetCookie]
        switch await proxy.credentials(for: entry.route, session: session, cookieHeader: cookieHeader, logger: logger) {
        case .success(let resolved): (bearer, cookies) = (resolved.bearer, resolved.cookies)
        case .failure(let refusal): return .refused(refusal.problem)
        }
        var upstream = entry.upstream.origin + entry.upstreamPath + remainder
        if upstream.hasSuffix(entry.upstream.origin) { upstream += "/" }
        if let query = head.path?.split(separator: "?", maxSplits: 1).dropFirst().first { upstream += "?" + query }
        if upstream.hasPrefix("https://") {
            upstream = "wss://" + upstream.dropFirst("https://".count)
        } else if upstream.hasPrefix("http://") {
            upstream = "ws://" + upstream.dropFirst("http://".count)
        }
        var headers = HTTPFields()
        if let remoteAddress { headers.set(ForwardingHeaders.forwardedFor, remoteAddress) }
        headers.set(ForwardingHeaders.forwardedProto, proxy.forwardedProto)
        headers.set(ForwardingHeaders.forwardedHost, proxy.forwardedHost)
        if let bearer { headers[.authorization] = "Bearer " + bearer }
        var responseHeaders = HTTPFields()
        for cookie in cookies { responseHeaders.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        let sessions = bff.sessions
        var sessionIsCurrent: (@Sendable () async -> Bool)?
        if session != nil {
            sessionIsCurrent = { @Sendable in
                do {
                    return try await sessions.load(cookies: cookieHeader) != nil
                } catch {
                    return true
                }
            }
        }
        return .upgrade(
            WebSocketUpstream(
                url: upstream, headers: headers, responseHeaders: responseHeaders, caFile: entry.route.caFile,
                route: entry.prefix, sessionIsCurrent: sessionIsCurrent))
    }
}

/// Handshake decisions never forward HTTP; the bridge opens its own WebSocket connection.
struct HandshakeOnlyTransport: UpstreamTransport {
    func send(_ request: UpstreamRequest, body: RequestBody?) async throws -> UpstreamResponse {
        throw UpstreamError.unavailable
    }
}
