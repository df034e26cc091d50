import BFFCore
import BFFForwarder
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Forwards requests under the configured `apis:` prefixes to their upstreams (SPEC §8), with the
/// anti-forgery check, the route's token, the header policy and 502/504 problems.
public struct RemoteAPIMiddleware<Context: BFFRequestContext>: RouterMiddleware {
    let bff: BFF
    let proxy: RemoteAPIProxy

    /// Creates the middleware; requests matching no route pass through.
    public init(bff: BFF, transport: any UpstreamTransport) {
        self.bff = bff
        self.proxy = RemoteAPIProxy(bff: bff, transport: transport)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let path = request.uri.path
        guard PathSanitizer.isSafe(path) else { return BFFResponses.problem(.invalidPath) }
        guard let (entry, remainder) = proxy.routes.match(path: path) else { return try await next(request, context) }
        if entry.route.websocket {
            // Upgrades are decided before routing; a handshake that gets here was refused.
            let decision = await WebSocketRoutes(bff: bff).decision(
                for: request.head, remoteAddress: context.bff.remoteAddress, logger: context.logger)
            if case .refused(let problem) = decision { return BFFResponses.problem(problem) }
            return BFFResponses.problem(.upgradeRequired)
        }
        guard bff.passesAntiForgery(request) else { return BFFResponses.problem(.antiforgery) }
        guard HeaderPolicy.acceptsTransferEncoding(request.headers[values: .transferEncoding]) else {
            return BFFResponses.problem(.unsupportedTransferCoding)
        }
        var context = context
        await bff.loadSession(for: request, into: &context)
        if context.bff.storeUnavailable, entry.route.token.usesUserToken {
            return BFFResponses.problem(.storeUnavailable)
        }
        let response = await proxy.forward(
            request, entry: entry, remainder: remainder, session: context.bff.session,
            remoteAddress: context.bff.remoteAddress, eventLoop: context.bff.eventLoop, logger: context.logger)
        bff.apiCallObserver?(
            APICallEvent(
                pipeline: .router, api: entry.prefix, target: request.uri.description, status: response.status.code))
        return response
    }
}

/// The forwarding work, separate from the middleware so other integrations can reuse it.
struct RemoteAPIProxy: Sendable {
    let bff: BFF
    let transport: any UpstreamTransport
    let routes: RouteTable
    let policy: HeaderPolicy
    let trusted: [IPAddressRange]
    let forwardedProto: String
    let forwardedHost: String

    init(bff: BFF, transport: any UpstreamTransport) {
        self.bff = bff
        self.transport = transport
        self.routes = RouteTable(routes: bff.configuration.apis)
        let session = bff.configuration.session.cookieName
        self.policy = HeaderPolicy(
            antiForgeryHeader: bff.configuration.antiforgery.headerName,
            bffCookiePrefixes: [session, bff.loginCookiePrefix, bff.logoutCookieName])
        self.trusted = bff.configuration.server.trustedProxies.compactMap(IPAddressRange.init)
        let origin = WebURL(bff.publicOrigin)
        self.forwardedProto = origin?.scheme ?? "https"
        if let origin {
            self.forwardedHost = origin.port.map { "\(origin.host):\($0)" } ?? origin.host
        } else {
            self.forwardedHost = ""
        }
    }

    func forward(
        _ request: Request, entry: RouteTable.Entry, remainder: Substring, session: LoadedSession?,
        remoteAddress: String?, eventLoop: (any EventLoop)? = nil, logger: Logger
    ) async -> Response {
        let route = entry.route
        let cookieHeader = CookieHeader(fields: request.headers[values: .cookie])
        let bearer: String?
        let cookies: [SetCookie]
        switch await credentials(for: route, session: session, cookieHeader: cookieHeader, logger: logger) {
        case .success(let resolved): (bearer, cookies) = (resolved.bearer, resolved.cookies)
        case .failure(let refusal): return BFFResponses.problem(refusal.problem, cookies: refusal.cookies)
        }

        let headers = upstreamHeaders(request.headers, remoteAddress: remoteAddress, bearer: bearer)
        var url = entry.upstream.origin + entry.upstreamPath + remainder
        if url.hasSuffix(entry.upstream.origin) { url += "/" }
        if let query = request.uri.query { url += "?" + query }
        let contentLength = request.headers[.contentLength].flatMap { Int($0) }
        let hasBody = contentLength.map { $0 > 0 } ?? (request.headers[.transferEncoding] != nil)
        let upstreamRequest = UpstreamRequest(
            method: request.method, url: url, headers: headers, contentLength: contentLength, timeout: route.timeout,
            eventLoop: eventLoop, caFile: route.caFile)
        let response: UpstreamResponse
        do {
            response = try await transport.send(upstreamRequest, body: hasBody ? request.body : nil)
        } catch let error as UpstreamError {
            if error.isClientFault {
                logger.debug("request body broke off or was malformed", metadata: ["bff.api": .string(entry.prefix)])
            } else {
                Self.logUpstreamFailure(error, api: entry.prefix, logger: logger)
            }
            return BFFResponses.problem(error.problem, cookies: cookies)
        } catch {
            return BFFResponses.problem(.upstreamUnavailable, cookies: cookies)
        }

        let responseHeaders = browserHeaders(response.head.headerFields, cookies: cookies)
        // A failure after the head (upstream stalled or closed mid-body) is logged like on the
        // event-loop path; the server then closes the client connection.
        // (A body already complete in one buffer has a length and cannot fail: left as it is.)
        var body = response.body
        if body.contentLength == nil {
            let upstreamBody = body
            let api = entry.prefix
            body = ResponseBody { writer in
                do {
                    try await upstreamBody.write(writer)
                } catch let error as UpstreamError {
                    Self.logUpstreamFailure(error, api: api, midResponse: true, logger: logger)
                    throw error
                }
            }
        }
        return Response(status: response.head.status, headers: responseHeaders, body: body)
    }
}

extension RemoteAPIProxy {
    /// The one log line for a failed upstream exchange, on every path: before the head (answered
    /// 502/503/504) or mid-response (`bff.phase: body`, the client connection closed).
    static func logUpstreamFailure(_ error: UpstreamError, api: String, midResponse: Bool = false, logger: Logger) {
        logger.warning(
            "upstream request failed",
            metadata: [
                "bff.api": .string(api), "bff.error": .string(error.description),
                "bff.phase": .string(midResponse ? "body" : "head"),
            ])
    }
}

extension UpstreamError {
    /// The problem a failed exchange is answered with: 504 for a timeout, 503 (`Retry-After`) when
    /// the pool had no connection in time, else 502.
    var problem: Problem {
        if isTimeout { return .upstreamTimeout }
        if isBusy { return .upstreamBusy }
        if isClientFault { return .badRequest }
        return .upstreamUnavailable
    }
}

extension RemoteAPIProxy {
    /// A header the gateway adds to upstream requests.
    enum GatewayHeader {
        case forwardedFor, forwardedProto, forwardedHost, authorization
    }

    /// The request header policy over any header representation (the router path uses
    /// swift-http-types fields, the event-loop fast path NIOHTTP1's): `keep` receives each client
    /// field that may go upstream, `add` the gateway's own — `X-Forwarded-*` and the bearer token.
    /// `lowercasedName` gives a field's name in lower case.
    func filterUpstreamHeaders<Field>(
        _ incoming: some Sequence<Field>, connection: [String], remoteAddress: String?, bearer: String?,
        lowercasedName: (Field) -> String, value: (Field) -> String, keep: (Field) -> Void,
        add: (GatewayHeader, String) -> Void
    ) {
        let connectionTokens = connection.isEmpty ? [] : HeaderPolicy.connectionTokens(connection)
        let trustedForwarding =
            trusted.isEmpty
            ? false : remoteAddress.map { address in trusted.contains { $0.contains(address) } } ?? false
        var forwardedFor: String?
        for field in incoming {
            let name = lowercasedName(field)
            guard
                policy.forwardsRequestHeader(
                    name, connectionTokens: connectionTokens, trustedForwarding: trustedForwarding)
            else { continue }
            if name == "x-forwarded-for" {
                forwardedFor = forwardedFor.map { $0 + ", " + value(field) } ?? value(field)
                continue
            }
            keep(field)
        }
        if let remoteAddress { forwardedFor = forwardedFor.map { $0 + ", " + remoteAddress } ?? remoteAddress }
        if let forwardedFor { add(.forwardedFor, forwardedFor) }
        add(.forwardedProto, forwardedProto)
        add(.forwardedHost, forwardedHost)
        if let bearer { add(.authorization, "Bearer " + bearer) }
    }

    /// The request headers for the upstream: the client's minus what the header policy drops, plus
    /// `X-Forwarded-*` and the route's bearer token.
    func upstreamHeaders(_ incoming: HTTPFields, remoteAddress: String?, bearer: String?) -> HTTPFields {
        var headers = HTTPFields()
        headers.reserveCapacity(incoming.count + 4)
        filterUpstreamHeaders(
            incoming, connection: incoming[values: .connection], remoteAddress: remoteAddress, bearer: bearer,
            lowercasedName: { $0.name.canonicalName }, value: { $0.value }, keep: { headers.append($0) },
            add: { header, value in
                switch header {
                case .forwardedFor: headers.set(ForwardingHeaders.forwardedFor, value)
                case .forwardedProto: headers.set(ForwardingHeaders.forwardedProto, value)
                case .forwardedHost: headers.set(ForwardingHeaders.forwardedHost, value)
                case .authorization: headers[.authorization] = value
                }
            })
        return headers
    }

    /// The response header policy over any header representation: `keep` receives each upstream
    /// field the browser may see.
    func filterBrowserHeaders<Field>(
        _ upstream: some Sequence<Field>, connection: [String], lowercasedName: (Field) -> String,
        value: (Field) -> String, keep: (Field) -> Void
    ) {
        let responseConnection = connection.isEmpty ? [] : HeaderPolicy.connectionTokens(connection)
        for field in upstream
        where policy.forwardsResponseHeader(
            lowercasedName(field), value: value(field), connectionTokens: responseConnection)
        {
            keep(field)
        }
    }

    /// The upstream response headers the browser may see (header policy), plus `cookies`.
    func browserHeaders(_ upstream: HTTPFields, cookies: [SetCookie]) -> HTTPFields {
        var responseHeaders = HTTPFields()
        responseHeaders.reserveCapacity(upstream.count)
        filterBrowserHeaders(
            upstream, connection: upstream[values: .connection], lowercasedName: { $0.name.canonicalName },
            value: { $0.value }, keep: { responseHeaders.append($0) })
        for cookie in cookies { responseHeaders.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        return responseHeaders
    }
}

/// Why a call to a route cannot proceed, with cookies to set on the refusal.
struct RouteRefusal: Error {
    let problem: Problem
    let cookies: [SetCookie]
}

extension RemoteAPIProxy {
    /// The bearer token the route needs (none for `none`, the user's — refreshed when due — or a
    /// client-credentials token), plus cookies to set (a re-issued cookie-mode session, or
    /// clearing cookies when the session ended).
    func credentials(
        for route: APIRouteConfiguration, session: LoadedSession?, cookieHeader: CookieHeader, logger: Logger
    ) async -> Result<(bearer: String?, cookies: [SetCookie]), RouteRefusal> {
        var cookies: [SetCookie] = []
        var bearer: String?
        if route.token.usesUserToken, var loaded = session {
            let outcome =
                if let resource = route.resource {
                    await bff.userTokens.accessToken(for: &loaded, cookies: cookieHeader, resource: resource)
                } else {
                    await bff.userTokens.accessToken(for: &loaded, cookies: cookieHeader)
                }
            switch outcome {
            case .token(let token, let issued):
                bearer = token
                // Every call that uses the session renews its idle timeout (throttled); in cookie
                // mode a renewal re-issues the whole cookie, superseding `issued`.
                let renewed = await bff.sessions.slide(&loaded, cookies: cookieHeader)
                cookies = renewed.isEmpty ? issued : renewed
            case .sessionEnded(let clearing):
                // `user` routes say so; `user-or-none` / `user-or-client` go on as anonymous callers.
                if route.token == .user { return .failure(RouteRefusal(problem: .sessionExpired, cookies: clearing)) }
                cookies = clearing
            case .idpUnavailable:
                return .failure(RouteRefusal(problem: .idpUnavailable, cookies: []))
            case .resourceRefused:
                // Signed in, but no token for this API: `user` routes refuse, the others go on
                // without a user token.
                if route.token == .user { return .failure(RouteRefusal(problem: .forbidden, cookies: [])) }
            }
        } else if route.token.requiresUser {
            return .failure(RouteRefusal(problem: .unauthenticated, cookies: []))
        }
        if bearer == nil, route.token.usesClientToken {
            do {
                bearer = try await bff.clientTokens.token(scopes: route.scopes, resource: route.resource)
            } catch {
                logger.warning("client credentials token unavailable", metadata: ["bff.error": "\(error)"])
                return .failure(RouteRefusal(problem: .idpUnavailable, cookies: cookies))
            }
        }
        return .success((bearer, cookies))
    }
}

/// Forwarding header names (optional like ``ExtraHeaderNames``: no code path can trap).
enum ForwardingHeaders {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")
    static let forwardedHost = HTTPField.Name("X-Forwarded-Host")
}
