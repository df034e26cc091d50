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
