import BFFCore
import BFFForwarder
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// What the fast path sends upstream for one request.
struct FastPathPlan {
    let method: HTTPRequest.Method
    let url: String
    let headers: HTTPFields
    let timeout: Duration
}

extension RemoteAPIProxy {
    /// A plan when the request can be served without leaving the event loop: a body-less
    /// GET/HEAD/OPTIONS on an (HTTP, non-WebSocket) API route that passes the anti-forgery check,
    /// whose token is at hand without I/O — none, a session's access token that is not due for
    /// refresh (memory store or cookie mode), or a cached client-credentials token. Anything else
    /// (and every refusal: 400/401/403) is nil and goes the normal path, which decides and
    /// answers exactly as before.
    func fastPathPlan(for head: HTTPRequest, remoteAddress: String?) -> FastPathPlan? {
        guard head.method == .get || head.method == .head || head.method == .options,
            let target = head.path
        else { return nil }
        let fields = head.headerFields
        if let length = fields[.contentLength], length != "0" { return nil }
        if fields[.transferEncoding] != nil || fields[.expect] != nil || fields[.upgrade] != nil { return nil }
        if fields[values: .connection].contains(where: { $0.lowercased().contains("close") }) { return nil }
        let path: Substring
        let query: Substring?
        if let mark = target.firstIndex(of: "?") {
            path = target[..<mark]
            query = target[target.index(after: mark)...]
        } else {
            path = target[...]
            query = nil
        }
        guard PathSanitizer.isSafe(path), let (entry, remainder) = routes.match(path: String(path)),
            !entry.route.websocket
        else { return nil }
        guard let name = bff.antiForgeryHeader,
            bff.antiForgery.allows(
                header: fields[values: name], secFetchSite: ExtraHeaderNames.secFetchSite.flatMap { fields[$0] },
                origin: fields[values: .origin])
        else { return nil }

        let route = entry.route
        var bearer: String?
        if route.token.usesUserToken {
            switch bff.sessions.loadImmediately(cookies: CookieHeader(fields: fields[values: .cookie])) {
            case .unavailable:
                return nil
            case .anonymous:
                if route.token.requiresUser { return nil }
            case .session(let loaded):
                let tokens = loaded.session.tokens
                guard let token = tokens.accessToken,
                    tokens.accessTokenExpiresAt.map({ $0 - bff.sessions.now > bff.userTokens.refreshBefore }) ?? true
                else { return nil }  // due for refresh: the normal path refreshes (single flight)
                bearer = token
            }
        } else if route.token.requiresUser {
            return nil
        }
        if bearer == nil, route.token.usesClientToken {
            guard let token = bff.clientTokens.cachedToken(scopes: route.scopes, resource: route.resource) else {
                return nil
            }
            bearer = token
        }
        var url = entry.upstream.origin + entry.upstreamPath + remainder
        if url.hasSuffix(entry.upstream.origin) { url += "/" }
        if let query { url += "?" + query }
        return FastPathPlan(
            method: head.method, url: url,
            headers: upstreamHeaders(fields, remoteAddress: remoteAddress, bearer: bearer), timeout: route.timeout)
    }
}

/// Serves API requests on the event loop when it can (see ``RemoteAPIProxy/fastPathPlan(for:remoteAddress:)``):
/// the request goes to an idle pooled upstream connection of the same event loop and the response
/// parts are written straight back, with back-pressure — no task, no router. Everything else
/// passes to Hummingbird unchanged. Sits after Hummingbird's connection-state handler, so
/// keep-alive and idle timeouts see every request and response.
///
/// Ordering: a request is only taken while no earlier request is being answered by the normal
/// path, and requests arriving while a fast exchange runs wait for it (pipelining stays ordered).
final class APIFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let proxy: RemoteAPIProxy
    let forwarder: NIOUpstream
    /// Requests handed to the normal path whose responses have not ended yet.
    private var outstanding = 0
    /// The fast exchange in progress.
    private var current: FastExchange?
    /// Whether the parts of the fast request (up to its `.end`) are still arriving.
    private var consumingRequest = false
    /// Parts that arrived while a fast exchange ran (pipelining), replayed after it.
    private var queued: [HTTPRequestPart] = []
    private var context: ChannelHandlerContext?

    init(proxy: RemoteAPIProxy, forwarder: NIOUpstream) {
        self.proxy = proxy
        self.forwarder = forwarder
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(unwrapInboundIn(data), context: context)
    }

    private func receive(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if consumingRequest {
            if case .end = part {
                consumingRequest = false
                // Nothing reached the async channel, so it asks for no more input: keep reading
                // ourselves, to see the next request or the client going away.
                context.read()
            }
            return  // the fast request's own (empty) end
        }
        if current != nil {
            queued.append(part)
            return
        }
        if case .head(let head) = part, outstanding == 0,
            let plan = proxy.fastPathPlan(for: head, remoteAddress: context.channel.remoteAddress?.ipAddress)
        {
            let exchange = FastExchange(handler: self, request: head)
            current = exchange
            consumingRequest = true
            guard
                let upstream = forwarder.exchangeIfIdle(
                    method: plan.method, url: plan.url, headers: plan.headers, timeout: plan.timeout,
                    eventLoop: context.eventLoop, consumer: exchange)
            else {
                current = nil
                consumingRequest = false
                passDown(part, context: context)
                return
            }
            exchange.upstream = upstream
            return
        }
        passDown(part, context: context)
    }

    private func passDown(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if case .head = part { outstanding += 1 }
        context.fireChannelRead(wrapInboundOut(part))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), outstanding > 0 { outstanding -= 1 }
        context.write(data, promise: promise)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        // While an exchange runs, the async channel behind us got nothing and asks for no more
        // input; keep reading so a client that goes away (FIN/RST) is noticed.
        if current != nil { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let current, current.paused {
            current.paused = false
            current.upstream?.resume()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client closed its side (the server allows half-closure, so this comes instead of
        // `channelInactive`, which does not come while a response waits for a reader that is gone).
        // Browsers never half-close a connection they still expect an answer on: end the exchange.
        if let inputClosed = event as? ChannelEvent, inputClosed == .inputClosed, let current {
            self.current = nil
            current.upstream?.abandon()
            queued.removeAll()
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let current {
            self.current = nil
            current.upstream?.abandon()
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let current {
            self.current = nil
            current.upstream?.abandon()
        }
        queued.removeAll()
        context.fireChannelInactive()
    }

    // MARK: called by the exchange (same event loop)

    func write(_ part: HTTPResponsePart, flush: Bool) {
        guard let context else { return }
        if flush {
            context.writeAndFlush(wrapOutboundOut(part), promise: nil)
        } else {
            context.write(wrapOutboundOut(part), promise: nil)
        }
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// The exchange ended (response complete): take the next queued request.
    func finished(_ exchange: FastExchange) {
        guard current === exchange, let context else { return }
        current = nil
        let pending = queued
        queued.removeAll()
        for part in pending { receive(part, context: context) }
        if !pending.isEmpty { context.fireChannelReadComplete() }
        context.read()
    }

    /// The upstream failed before anything was written: let the normal path handle the request
    /// (it retries a stale connection once, or answers 502/504).
    func fallBack(_ exchange: FastExchange) {
        guard current === exchange, let context else { return }
        current = nil
        outstanding += 1
        context.fireChannelRead(wrapInboundOut(.head(exchange.request)))
        if !consumingRequest { context.fireChannelRead(wrapInboundOut(.end(nil))) }
        consumingRequest = false  // the request's end, if still to come, goes down as well
        let pending = queued
        queued.removeAll()
        for part in pending { receive(part, context: context) }
        context.fireChannelReadComplete()
    }

    /// Answers the exchange's request with a problem (the upstream timed out before its head).
    func answer(_ exchange: FastExchange, problem: Problem) {
        guard current === exchange else { return }
        let body = ByteBuffer(string: problem.json())
        var head = HTTPResponse(status: .init(code: problem.status))
        head.headerFields = [
            .contentType: "application/problem+json", .cacheControl: "no-store", .xContentTypeOptions: "nosniff",
            .contentLength: String(body.readableBytes),
        ]
        write(.head(head), flush: false)
        write(.body(body), flush: false)
        write(.end(nil), flush: true)
        finished(exchange)
    }

    /// The upstream failed mid-response: the response cannot be completed; close the connection.
    func abort(_ exchange: FastExchange) {
        guard current === exchange, let context else { return }
        current = nil
        queued.removeAll()
        context.close(promise: nil)
    }
}

/// One fast exchange: receives the upstream response on the event loop and writes it back.
final class FastExchange: UpstreamResponseConsumer {
    /// Weak: the upstream connection may outlive the client's channel.
    weak var handler: APIFastPathHandler?
    let request: HTTPRequest
    var upstream: UpstreamExchange?
    var paused = false
    private var wroteHead = false

    init(handler: APIFastPathHandler, request: HTTPRequest) {
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
            var response = HTTPResponse(
                status: .init(code: Int(head.status.code), reasonPhrase: head.status.reasonPhrase))
            var upstreamFields = HTTPFields()
            upstreamFields.reserveCapacity(head.headers.count)
            for (name, value) in head.headers {
                if let fieldName = HTTPField.Name(name) {
                    upstreamFields.append(HTTPField(name: fieldName, value: value))
                }
            }
            response.headerFields = handler.proxy.browserHeaders(upstreamFields, cookies: [])
            wroteHead = true
            handler.write(.head(response), flush: false)
        case .body(let buffer):
            handler.write(.body(buffer), flush: false)
            if !handler.isWritable {
                // Flushing may drain the socket at once (and report writability synchronously,
                // before the upstream side could pause): only pause if it is still full after it.
                handler.flush()
                if !handler.isWritable {
                    paused = true
                    return false
                }
            }
        case .end:
            handler.write(.end(nil), flush: true)
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
                    handler.fallBack(self)  // the normal path retries a stale connection once, or 502
                }
            }
        }
        return true
    }
}

extension APIFastPathHandler {
    /// Runs `body` on this handler's event loop after the current call stack.
    func deferOnLoop(_ body: @escaping () -> Void) {
        guard let context else { return }
        let bound = NIOLoopBound(body, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value() }
    }

    func flush() { context?.flush() }
}

/// Hummingbird's HTTP/1.1 channel with the API fast path inserted after its connection-state
/// handler. Use it through ``BFF/http1ServerWithFastPath(configuration:forwarder:)``.
public struct FastPathHTTP1Channel: ServerChildChannel {
    let inner: HTTP1Channel
    let proxy: RemoteAPIProxy
    let forwarder: NIOUpstream

    public typealias Value = HTTP1Channel.Value

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let state = try channel.pipeline.syncOperations.context(handlerType: HTTPConnectionStateHandler.self)
            try channel.pipeline.syncOperations.addHandler(
                APIFastPathHandler(proxy: proxy, forwarder: forwarder), position: .after(state.handler))
            return value
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
        let proxy = RemoteAPIProxy(bff: self, transport: forwarder)
        return HTTPServerBuilder { responder in
            FastPathHTTP1Channel(
                inner: HTTP1Channel(responder: responder, configuration: configuration), proxy: proxy,
                forwarder: forwarder)
        }
    }
}
