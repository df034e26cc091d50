import BFFCore
import BFFForwarder
import Logging
import NIOCore
import NIOHTTP1

/// The event-loop fast path for API calls: what it needs, computed once per server.
///
/// A request qualifies when it is a body-less keep-alive GET/HEAD/OPTIONS on a plain-http API
/// route, passes the anti-forgery check, and its token is at hand without I/O — none, a session's
/// access token (or resource token) that is not due for refresh, from a store that can answer at
/// once (memory, SQLite's confirmed records, cookie mode), or a cached client-credentials token. Anything else, every refusal (400/401/403) included, goes to the
/// router, which decides and answers exactly as it always does.
final class APIFastPath: Sendable {
    struct Route: Sendable {
        /// nil: the route never takes the fast path (https or WebSocket upstream).
        let target: NIOUpstream.Target?
        /// The upstream path without its trailing slash.
        let upstreamPath: String
        let timeout: TimeAmount
    }

    /// What is sent upstream for one request.
    struct Plan {
        let head: HTTPRequestHead
        let target: NIOUpstream.Target
        let timeout: TimeAmount
        /// The route's configured path (logs).
        let api: String
    }

    let proxy: RemoteAPIProxy
    let forwarder: NIOUpstream
    /// Aligned with `proxy.routes.entries`.
    let routes: [Route]
    /// The anti-forgery header's name in lower case; nil when the check is off (no fast path then).
    let antiForgeryHeader: String?
    /// Keep-alive connections with nothing in flight are closed after this long.
    let idleTimeout: TimeAmount?
    /// A client that takes nothing of a response for this long is disconnected (both paths).
    let sendTimeout: TimeAmount
    // What `plan` reads of the BFF, held directly (copying the whole BFF value per request showed
    // up in profiles).
    let sessions: SessionManager
    let userTokens: UserTokenManager
    let clientTokens: ClientTokenCache
    let antiForgery: AntiForgeryPolicy
    let logger: Logger

    init(proxy: RemoteAPIProxy, forwarder: NIOUpstream, idleTimeout: TimeAmount?) {
        self.proxy = proxy
        self.forwarder = forwarder
        self.routes = proxy.routes.entries.map { entry in
            let target = entry.route.websocket ? nil : NIOUpstream.Target(entry.upstream.origin + "/")
            return Route(
                target: target?.tls == false ? target : nil, upstreamPath: entry.upstreamPath,
                timeout: TimeAmount(entry.route.timeout))
        }
        self.antiForgeryHeader = proxy.bff.antiForgeryHeader?.canonicalName
        self.sessions = proxy.bff.sessions
        self.userTokens = proxy.bff.userTokens
        self.clientTokens = proxy.bff.clientTokens
        self.antiForgery = proxy.bff.antiForgery
        self.logger = proxy.bff.logger
        self.idleTimeout = idleTimeout
        self.sendTimeout = idleTimeout ?? .seconds(60)
    }

    /// A client header with its name in lower case.
    struct Field {
        let lowercasedName: String
        let name: String
        let value: String
    }

    /// The plan for `head`, or nil when the router must handle it.
    func plan(for head: HTTPRequestHead, remoteAddress: String?) -> Plan? {
        switch head.method {
        case .GET, .HEAD, .OPTIONS: break
        default: return nil
        }
        guard head.version == .http1_1, head.isKeepAlive else { return nil }  // HTTP/1.0: the router
        var fields: [Field] = []
        fields.reserveCapacity(head.headers.count)
        var cookies: [String] = []
        var connection: [String] = []
        var origins: [String] = []
        var antiForgery: [String] = []
        var secFetchSite: [String] = []
        for (name, value) in head.headers {
            // llhttp refuses control characters already; checked again because these values go
            // upstream without a second validation pass.
            guard APIFastPath.isPlain(value) else { return nil }
            let lowercased = name.asciiLowercased
            switch lowercased {
            case "transfer-encoding", "expect", "upgrade": return nil  // bodies and upgrades: the router
            case "content-length": if value != "0" { return nil }
            case "cookie": cookies.append(value)
            case "connection": connection.append(value)
            case "origin": origins.append(value)
            case "sec-fetch-site": secFetchSite.append(value)
            default: if lowercased == antiForgeryHeader { antiForgery.append(value) }
            }
            fields.append(Field(lowercasedName: lowercased, name: name, value: value))
        }
        guard antiForgeryHeader != nil,
            self.antiForgery.allows(header: antiForgery, secFetchSite: secFetchSite, origin: origins)
        else { return nil }

        let uri = head.uri
        guard uri.utf8.first == UInt8(ascii: "/"), !uri.utf8.contains(UInt8(ascii: "#")) else { return nil }
        let path: Substring
        let query: Substring?
        if let mark = uri.firstIndex(of: "?") {
            path = uri[..<mark]
            query = uri[uri.index(after: mark)...]
        } else {
            path = uri[...]
            query = nil
        }
        guard PathSanitizer.isSafe(path), let (index, remainder) = proxy.routes.matchIndex(path: String(path)),
            let target = routes[index].target
        else { return nil }

        let route = proxy.routes.entries[index].route
        var bearer: String?
        if route.token.usesUserToken {
            switch sessions.loadImmediately(cookies: CookieHeader(fields: cookies)) {
            case .unavailable:
                return nil
            case .anonymous:
                if route.token.requiresUser { return nil }
            case .session(let loaded):
                // Due for its idle-timeout renewal (a write): the router slides it.
                if sessions.isDueForSlide(loaded.session) { return nil }
                let tokens = loaded.session.tokens
                let (token, expiresAt) =
                    if let resource = route.resource {
                        (tokens.token(for: resource)?.accessToken, tokens.token(for: resource)?.expiresAt)
                    } else {
                        (tokens.accessToken, tokens.accessTokenExpiresAt)
                    }
                guard let token, expiresAt.map({ $0 - sessions.now > userTokens.refreshBefore }) ?? true
                else { return nil }  // missing or due for refresh: the router gets one (single flight)
                bearer = token
            }
        } else if route.token.requiresUser {
            return nil
        }
        if bearer == nil, route.token.usesClientToken {
            guard let token = clientTokens.cachedToken(scopes: route.scopes, resource: route.resource) else {
                return nil
            }
            bearer = token
        }

        var pathAndQuery = routes[index].upstreamPath + remainder
        if pathAndQuery.isEmpty { pathAndQuery = "/" }
        if let query { pathAndQuery += "?" + query }
        var upstream = HTTPRequestHead(version: .http1_1, method: head.method, uri: pathAndQuery)
        upstream.headers.reserveCapacity(fields.count + 4)
        upstream.headers.add(name: "Host", value: target.hostHeader)
        proxy.filterUpstreamHeaders(
            fields, connection: connection, remoteAddress: remoteAddress, bearer: bearer,
            lowercasedName: { $0.lowercasedName }, value: { $0.value },
            keep: { upstream.headers.add(name: $0.name, value: $0.value) },
            add: { upstream.headers.add(name: $0.fieldName, value: $1) })
        return Plan(
            head: upstream, target: target, timeout: routes[index].timeout, api: proxy.routes.entries[index].prefix)
    }

    /// Tells the BFF's API-call hook, if any, that this path served `request`.
    func observe(_ request: HTTPRequestHead, api: String, status: Int) {
        proxy.bff.apiCallObserver?(APICallEvent(pipeline: .eventLoop, api: api, target: request.uri, status: status))
    }

    /// The response head for the browser: the upstream's status and the headers the policy lets through.
    func browserHead(_ upstream: HTTPResponseHead) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(upstream.headers.count)
        proxy.filterBrowserHeaders(
            upstream.headers, connection: upstream.headers["connection"], lowercasedName: { $0.name.asciiLowercased },
            value: { $0.value }, keep: { headers.add(name: $0.name, value: $0.value) })
        return HTTPResponseHead(version: .http1_1, status: upstream.status, headers: headers)
    }

    /// No control characters other than horizontal tab.
    static func isPlain(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }
    }
}

extension RemoteAPIProxy.GatewayHeader {
    var fieldName: String {
        switch self {
        case .forwardedFor: "X-Forwarded-For"
        case .forwardedProto: "X-Forwarded-Proto"
        case .forwardedHost: "X-Forwarded-Host"
        case .authorization: "Authorization"
        }
    }
}

extension String {
    /// Lower-cased, without allocating when there is nothing to change (header names mostly).
    var asciiLowercased: String {
        utf8.contains { $0 >= 0x41 && $0 <= 0x5A } ? lowercased() : self
    }
}

// The rest of the fast path: `APIFastPathHandler` (the channel handler), `FastExchange` (one
// upstream exchange), `FastPathHTTP1Channel` (the server channel that installs the handler).
