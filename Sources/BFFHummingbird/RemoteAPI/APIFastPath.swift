import BFFCore
import BFFForwarder
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// The event-loop fast path for API calls: what it needs, computed once per server.
///
/// A request qualifies when it is a body-less keep-alive GET/HEAD/OPTIONS on a plain-http API
/// route, passes the anti-forgery check, and its token is at hand without I/O — none, a session's
/// access token that is not due for refresh (memory store or cookie mode), or a cached
/// client-credentials token. Anything else, every refusal (400/401/403) included, goes to the
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
        return Plan(head: upstream, target: target, timeout: routes[index].timeout)
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

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Serves API requests on the event loop when it can (see ``APIFastPath``): the request goes to
/// an idle pooled upstream connection of the same event loop and the response parts are written
/// straight back, with back-pressure — no task, no router, no conversion to swift-http-types.
/// Everything else passes on to Hummingbird unchanged.
///
/// It sits right after NIO's HTTP/1.1 codec, before Hummingbird's swift-http-types codec and its
/// connection-state handler, which therefore never see fast requests; so this handler keeps the
/// connection's state for both kinds: the idle timeout and graceful shutdown (quiescing) are
/// handled here, and Hummingbird's handler is set up without an idle timeout.
///
/// Ordering: a request is only taken while no earlier request is being answered by the router,
/// and requests arriving while a fast exchange runs wait for it (pipelining stays ordered; reading
/// stops while one waits).
final class APIFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let fastPath: APIFastPath
    /// Requests handed to the router whose responses have not ended yet.
    private var outstanding = 0
    /// The fast exchange in progress.
    private var current: FastExchange?
    /// Whether the fast request's own `.end` is still to come.
    private var consumingRequest = false
    /// Parts that arrived while a fast exchange ran (pipelining), replayed after it.
    private var queued: [HTTPServerRequestPart] = []
    /// A `read` held back while parts wait in `queued`.
    private var heldRead = false
    private var context: ChannelHandlerContext?
    private var remoteAddress: String?
    /// Graceful shutdown asked for: close once nothing is in flight.
    private var closeWhenIdle = false
    private var lastActivity = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?
    /// While the client socket is not writable: checks that the client still takes data.
    private var sendCheck: Scheduled<Void>?
    private var bufferedAtLastCheck = Int.max

    init(fastPath: APIFastPath) {
        self.fastPath = fastPath
    }

    private var isIdle: Bool { outstanding == 0 && current == nil && queued.isEmpty }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remoteAddress = context.channel.remoteAddress?.ipAddress
        scheduleIdleCheck(at: .now() + (fastPath.idleTimeout ?? .zero))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelChecks()
        self.context = nil
    }

    private func cancelChecks() {
        idleCheck?.cancel()
        idleCheck = nil
        sendCheck?.cancel()
        sendCheck = nil
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(unwrapInboundIn(data), context: context)
    }

    private func receive(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        if consumingRequest {
            if case .end = part { consumingRequest = false }
            return  // the fast request's own (empty) end
        }
        if current != nil {
            queued.append(part)
            return
        }
        guard case .head(let head) = part else {
            context.fireChannelRead(wrapInboundOut(part))
            return
        }
        lastActivity = .now()
        if outstanding == 0, !closeWhenIdle, let plan = fastPath.plan(for: head, remoteAddress: remoteAddress) {
            let exchange = FastExchange(handler: self, request: head)
            current = exchange
            consumingRequest = true
            if let upstream = fastPath.forwarder.exchangeIfIdle(
                plan.head, to: plan.target, timeout: plan.timeout, eventLoop: context.eventLoop, consumer: exchange)
            {
                exchange.upstream = upstream
                return
            }
            current = nil
            consumingRequest = false
        }
        outstanding += 1
        context.fireChannelRead(wrapInboundOut(part))
    }

    func read(context: ChannelHandlerContext) {
        if current != nil && !queued.isEmpty {
            heldRead = true  // back-pressure on pipelined requests
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // Hummingbird's connection-state handler would close with a fast exchange in flight;
            // it never sees this event.
            if isIdle {
                context.close(promise: nil)
            } else {
                closeWhenIdle = true
            }
        case let event as ChannelEvent where event == .inputClosed && current != nil:
            // The client closed its side while a fast response is on its way (browsers never
            // half-close a connection they still expect an answer on): end the exchange.
            abandonCurrent()
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        abandonCurrent()
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandonCurrent()
        cancelChecks()
        context.fireChannelInactive()
    }

    private func abandonCurrent() {
        guard let current else { return }
        self.current = nil
        queued.removeAll()
        current.stop()
    }

    // MARK: outbound (the router's responses)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        if case .end = unwrapOutboundIn(data), outstanding > 0 {
            outstanding -= 1
            responseEnded(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendCheck?.cancel()
            sendCheck = nil
            current?.resumeIfPaused()
        } else if sendCheck == nil {
            bufferedAtLastCheck = bufferedBytes(context)
            scheduleSendCheck(context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// A client that stops reading would hold its response — and, through back-pressure, the
    /// upstream connection behind it — for ever (a slow-read attack, on either path). While the
    /// socket is not writable, every ``APIFastPath/sendTimeout`` the bytes waiting for the client
    /// must have gone down; if not, the connection is closed (which also ends a router response).
    private func scheduleSendCheck(_ context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        sendCheck = context.eventLoop.scheduleTask(in: fastPath.sendTimeout) {
            let handler = handler.value
            handler.sendCheck = nil
            guard let context = handler.context, !context.channel.isWritable else { return }
            let buffered = handler.bufferedBytes(context)
            if buffered < handler.bufferedAtLastCheck {
                handler.bufferedAtLastCheck = buffered
                handler.scheduleSendCheck(context)
            } else {
                handler.abandonCurrent()
                context.close(promise: nil)
            }
        }
    }

    private func bufferedBytes(_ context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    // MARK: connection state

    private func responseEnded(context: ChannelHandlerContext) {
        lastActivity = .now()
        if closeWhenIdle && isIdle {
            context.flush()
            context.close(promise: nil)
        }
    }

    private func scheduleIdleCheck(at deadline: NIODeadline) {
        guard let context, let timeout = fastPath.idleTimeout else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) {
            let handler = handler.value
            handler.idleCheck = nil
            guard let context = handler.context else { return }
            let now = NIODeadline.now()
            if !handler.isIdle {
                handler.scheduleIdleCheck(at: now + timeout)
            } else if now - handler.lastActivity >= timeout {
                context.close(promise: nil)
            } else {
                handler.scheduleIdleCheck(at: handler.lastActivity + timeout)
            }
        }
    }

    // MARK: called by the exchange (same event loop)

    func write(_ part: HTTPServerResponsePart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() { context?.flush() }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// The exchange ended (response complete): take the queued parts.
    func finished(_ exchange: FastExchange) {
        guard current === exchange, let context else { return }
        current = nil
        responseEnded(context: context)
        replayQueued(context: context)
    }

    private func replayQueued(context: ChannelHandlerContext) {
        guard !queued.isEmpty else { return }
        let pending = queued
        queued.removeAll()
        for part in pending { receive(part, context: context) }
        context.fireChannelReadComplete()
        if heldRead && (current == nil || queued.isEmpty) {
            heldRead = false
            context.read()
        }
    }

    /// The upstream failed before anything was written: let the router handle the request (it
    /// retries a stale connection once, or answers 502/504).
    func fallBack(_ exchange: FastExchange) {
        guard current === exchange, let context else { return }
        current = nil
        outstanding += 1
        context.fireChannelRead(wrapInboundOut(.head(exchange.request)))
        if !consumingRequest { context.fireChannelRead(wrapInboundOut(.end(nil))) }
        consumingRequest = false  // the request's end, if still to come, goes on as well
        context.fireChannelReadComplete()
        replayQueued(context: context)
    }

    /// Answers the exchange's request with a problem (the upstream timed out before its head).
    func answer(_ exchange: FastExchange, problem: Problem) {
        guard current === exchange else { return }
        let body = ByteBuffer(string: problem.json())
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/problem+json")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: problem.status), headers: headers)))
        write(.body(.byteBuffer(body)))
        write(.end(nil))
        flush()
        finished(exchange)
    }

    /// The response cannot be completed (the upstream failed mid-response, or the client stopped
    /// reading): close the connection.
    func abort(_ exchange: FastExchange) {
        guard current === exchange, let context else { return }
        abandonCurrent()
        context.close(promise: nil)
    }
}

/// One fast exchange: receives the upstream response on the event loop and writes it back.
final class FastExchange: UpstreamResponseConsumer {
    /// Weak: the upstream connection may outlive the client's channel.
    weak var handler: APIFastPathHandler?
    let request: HTTPRequestHead
    var upstream: UpstreamExchange?
    private var paused = false
    private var wroteHead = false

    init(handler: APIFastPathHandler, request: HTTPRequestHead) {
        self.handler = handler
        self.request = request
    }

    func push(_ event: UpstreamEvent) -> Bool {
        guard let handler else {
            upstream?.abandon()
            return true
        }
        switch event {
        case .head(let head):
            wroteHead = true
            handler.write(.head(handler.fastPath.browserHead(head)))
        case .body(let buffer):
            handler.write(.body(.byteBuffer(buffer)))
            if !handler.isWritable {
                // Flushing may drain the socket at once (and report writability synchronously,
                // before the upstream side could pause): only pause if it is still full after it.
                handler.flush()
                if !handler.isWritable {
                    paused = true  // resumed on writability; the handler's send check bounds the wait
                    return false
                }
            }
        case .end:
            handler.write(.end(nil))
            handler.flush()
            upstream?.complete()
            handler.finished(self)
        case .failed(let error):
            // May arrive while the exchange is still being set up (a pooled connection the upstream
            // had closed): act once the current call stack has unwound and `upstream` is set.
            let wroteHead = self.wroteHead
            handler.deferOnLoop { [self] in
                upstream?.abandon()
                guard let handler = self.handler else { return }
                if wroteHead {
                    handler.abort(self)
                } else if error.isTimeout {
                    handler.answer(self, problem: .upstreamTimeout)  // retrying would double the wait
                } else {
                    handler.fallBack(self)  // the router retries a stale connection once, or answers 502
                }
            }
        }
        return true
    }

    /// The client can take more.
    func resumeIfPaused() {
        guard paused else { return }
        paused = false
        upstream?.resume()
    }

    /// The client went away: the upstream connection is closed, not reused.
    func stop() {
        paused = false
        upstream?.abandon()
    }
}

extension APIFastPathHandler {
    /// Runs `body` on this handler's event loop after the current call stack.
    func deferOnLoop(_ body: @escaping () -> Void) {
        guard let context else { return }
        let bound = NIOLoopBound(body, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value() }
    }
}

/// Hummingbird's HTTP/1.1 channel with the API fast path right after NIO's HTTP codec. Use it
/// through ``BFF/http1ServerWithFastPath(configuration:forwarder:)``.
public struct FastPathHTTP1Channel: ServerChildChannel {
    let inner: HTTP1Channel
    let fastPath: APIFastPath

    public typealias Value = HTTP1Channel.Value

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // As HTTP1Channel.setup, with the fast path between the two codecs and the idle timeout
        // kept by the fast path (Hummingbird's handler cannot see fast requests).
        channel.eventLoop.makeCompletedFuture {
            let decoder = inner.configuration.httpDecoder
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = decoder.maxHeaderFieldSize
            limits.maxHeaderListSize = decoder.maxHeaderListSize
            limits.maxHeaderFieldCount = decoder.maxHeaderFieldCount
            let pipeline = channel.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try pipeline.addHandler(APIFastPathHandler(fastPath: fastPath))
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandlers(inner.configuration.additionalChannelHandlers())
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

extension BFF {
    /// An HTTP/1.1 server whose body-less API requests with a token at hand are forwarded on the
    /// event loop (see ``APIFastPathHandler``); every other request is served by the router as usual.
    public func http1ServerWithFastPath(configuration: HTTP1Channel.Configuration, forwarder: NIOUpstream)
        -> HTTPServerBuilder
    {
        let fastPath = APIFastPath(
            proxy: RemoteAPIProxy(bff: self, transport: forwarder), forwarder: forwarder,
            idleTimeout: configuration.idleTimeout)
        return HTTPServerBuilder { responder in
            FastPathHTTP1Channel(
                inner: HTTP1Channel(responder: responder, configuration: configuration), fastPath: fastPath)
        }
    }
}
