import BFFCore
import BFFForwarder
import NIOCore
import NIOHTTP1
import Tracing

/// The gateway's adapter of the API pipeline: every request under an API route is decided by the
/// ``APICallPlanner`` and forwarded on the connection's event loop — bodies streamed both ways
/// with back-pressure, `Expect: 100-continue`, suspension for a store read or a refresh, one retry
/// of an idempotent body-less call that met a stale connection. Everything else passes on to
/// Hummingbird unchanged.
///
/// It sits right after NIO's HTTP/1.1 codec, before Hummingbird's swift-http-types codec and its
/// connection-state handler, which therefore never see API calls; so this handler keeps the
/// connection's idle timeout and graceful shutdown for both kinds. Which request is in progress
/// and what waits behind it is ``APIConnectionStateMachine``'s; the timers are here.
final class APICallHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The frontends whose calls this handler decides (each request's own, by Host and path).
    let frontends: APICallFrontends
    var machine = APIConnectionStateMachine()
    /// The exchange in progress (forwarding) or being set up (waiting).
    /// The call in progress (set and cleared on the event loop, here and in
    /// `APICallHandler+Exchange.swift`).
    var current: APIExchange?
    var context: ChannelHandlerContext?
    private var remoteAddress: String?
    var lastActivity = NIODeadline.now()
    var idleCheck: Scheduled<Void>?
    /// While the client socket is not writable: checks that the client still takes data.
    var sendCheck: Scheduled<Void>?
    var bufferedAtLastCheck = Int.max
    /// Request body written upstream since the last flush.
    private var uploadUnflushed = false
    /// Between a `channelRead` and its `channelReadComplete` (which flushes what went upstream).
    private var inClientRead = false
    /// Parts were passed to the router since the last `channelReadComplete` went on.
    private var passedOn = false
    /// The client sent bytes the HTTP parser refused while an API call was in progress: the
    /// connection closes once that call's response is complete.
    private var malformedInput = false

    init(frontends: APICallFrontends) {
        self.frontends = frontends
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remoteAddress = context.channel.remoteAddress?.ipAddress
        scheduleIdleCheck(at: .now() + (frontends.idleTimeout ?? .zero))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelChecks()
        self.context = nil
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inClientRead = true
        receive(unwrapInboundIn(data), context: context)
    }

    private func receive(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        perform(machine.received(part), context: context)
    }

    private func perform(_ action: APIConnectionStateMachine.ReceiveAction, context: ChannelHandlerContext) {
        switch action {
        case .none: break
        case .decide(let head): decide(head, context: context)
        case .passOn(let part):
            passedOn = true
            context.fireChannelRead(wrapInboundOut(part))
            // A router response that ended before its request did: the connection is free now.
            if case .end = part, machine.state == .idle { requestCompleted(context: context) }
        case .upload(let buffer):
            // Flushed once per read from the client (channelReadComplete): head and body of a
            // small request leave in one write.
            current?.upstream?.write(buffer)
            uploadUnflushed = true
        case .uploadEnd:
            // A body-less request's end went up with its head.
            if let current, current.plan?.body.hasBody == true {
                current.upstream?.end()
                uploadUnflushed = true
            }
        case .requestDone:
            requestCompleted(context: context)
        }
    }

    private func decide(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        lastActivity = .now()
        // The request's frontend; without one (or with two Host fields) it is the router's, which
        // answers no-frontend (or 400).
        let hosts = head.headers["host"]
        guard hosts.count <= 1,
            let settings = frontends.settings(host: hosts.first, path: head.uri.prefix { $0 != "?" })
        else {
            machine.pass()
            passedOn = true
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        let exchange = APIExchange(handler: self, request: head, settings: settings)
        if let tracer = settings.tracer, settings.planner.isAPIPath(head.uri.prefix { $0 != "?" }) {
            let parent = settings.planner.incomingContext(
                remoteAddress: remoteAddress, carrier: head.headers, using: NIOHeadersExtractor(), tracer: tracer.tracer
            )
            let span = tracer.start("HTTP " + head.method.rawValue, context: parent, ofKind: .server)
            span.record { $0.method = head.method.rawValue }
            exchange.span = span
        }
        let decision: APICallDecision
        if head.version.major != 1 || (head.version.minor == 0 && head.headers.contains(name: "transfer-encoding")) {
            // A chunked HTTP/1.0 request is faulty (RFC 9112 §6.1): refused, and the connection closed.
            guard settings.planner.isAPIPath(head.uri.prefix { $0 != "?" }) else {
                machine.pass()
                passedOn = true
                context.fireChannelRead(wrapInboundOut(.head(head)))
                return
            }
            answer(exchange, .badRequest, cookies: [], api: nil, context: context, close: true)
            return
        } else {
            decision = settings.planner.plan(APICallRequest(head, remoteAddress: remoteAddress))
        }
        switch decision {
        case .pass:
            machine.pass()
            passedOn = true
            context.fireChannelRead(wrapInboundOut(.head(head)))
        case .refuse(let refusal):
            answer(exchange, refusal.problem, cookies: refusal.cookies, api: refusal.api, context: context)
        case .forward(let plan):
            start(exchange, plan: plan, context: context)
        case .suspend(let work):
            machine.suspend()
            current = exchange
            // The planner's work (a store read, a refresh, a client token) runs in a task; its
            // decision comes back on this event loop. (NIO's `makeFutureWithTask` owns the task;
            // the store and token calls inside are bounded by their own deadlines.)
            let span = exchange.span
            exchange.spanHasChildren = span != nil
            context.eventLoop.makeFutureWithTask {  // justified: NIO owns the task; store/token deadlines end it
                // Inside the call's span: the store and IdP spans of the work are its children.
                guard let span else { return await work.resume() }
                return await ServiceContext.withValue(span.span.context) { await work.resume() }
            }.assumeIsolated().whenSuccess { [self] decision in
                guard current === exchange, let context = self.context else { return }  // the client left
                switch decision {
                case .forward(let plan): start(exchange, plan: plan, context: context)
                case .refuse(let refusal):
                    answer(exchange, refusal.problem, cookies: refusal.cookies, api: refusal.api, context: context)
                case .pass, .suspend:
                    answer(exchange, .internalError, cookies: [], api: work.api, context: context)
                }
            }
        }
    }

    /// Starts the upstream exchange for `plan`.
    private func start(_ exchange: APIExchange, plan: APICallPlan, context: ChannelHandlerContext) {
        guard !plan.upstream.tls, !plan.isWebSocket else {
            // https upstreams (and a WebSocket route reached without the upgrade channel) are
            // the router's: its transport speaks TLS.
            machine.suspend()
            current = nil
            // The router's adapter traces the call. This span is dropped unless work already ran
            // in it: then it ends here (the parent of that work's spans), marked as handed over.
            if let span = exchange.span, exchange.spanHasChildren {
                span.record {
                    $0.route = plan.api
                    $0.routeInName = true
                    $0.handoff = "router"
                }
                span.end()
            }
            exchange.span = nil
            fallBackToRouter(exchange.request, context: context)
            return
        }
        machine.suspend()
        current = exchange
        exchange.plan = plan
        exchange.connect(fresh: false, eventLoop: context.eventLoop)
    }

    /// The exchange has its upstream connection and sent the head.
    func exchangeStarted(_ exchange: APIExchange) {
        guard current === exchange, let context else {
            exchange.upstream?.abandon()
            return
        }
        let pending = machine.forward()
        if exchange.plan?.expectsContinue == true, exchange.plan?.body.hasBody == true, pending.isEmpty {
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        for action in pending { perform(action, context: context) }
        // The head (with a body, not flushed yet) and whatever came meanwhile leave now; later
        // parts are flushed at the end of each read from the client.
        uploadUnflushed = uploadUnflushed || exchange.plan?.body.hasBody == true
        if !inClientRead { flushUpload() }  // within a read, its end flushes (with the body that follows)
        if machine.releaseRead() { context.read() }
    }

    /// Routes a request the handler cannot forward itself to Hummingbird (the middleware adapter).
    private func fallBackToRouter(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let buffered = machine.passAfterWaiting()  // parts that arrived while deciding
        context.fireChannelRead(wrapInboundOut(.head(head)))
        for part in buffered { context.fireChannelRead(wrapInboundOut(part)) }
        passedOn = false
        context.fireChannelReadComplete()
        if machine.releaseRead() { context.read() }
    }

    /// Writes a problem for the exchange's request.
    func answer(
        _ exchange: APIExchange, _ problem: Problem, cookies: [SetCookie], api: String?, context: ChannelHandlerContext,
        close: Bool = false
    ) {
        if current === exchange { current = nil }
        let body = ByteBuffer(string: problem.json())
        var headers = HTTPHeaders()
        for (name, value) in problem.responseHeaders(cookies: cookies) { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        // A body announced with `Expect: 100-continue` may or may not follow, and an HTTP/1.0 or
        // `Connection: close` client expects the close: close after the answer.
        // (Decided at the head — state still idle — the request's end is still to come.)
        let requestOpen = machine.state == .idle || machine.requestOpen
        let closeAfter =
            close || (requestOpen && exchange.request.headers.contains(name: "expect"))
            || !exchange.request.isKeepAlive || exchange.request.endsHTTPParsing
        if closeAfter { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(
                .head(
                    HTTPResponseHead(
                        version: exchange.request.version, status: .init(statusCode: problem.status), headers: headers))
            ),
            promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        exchange.settings.observe(
            exchange, api: api ?? "", status: problem.status, fromUpstream: false, bytes: body.readableBytes)
        if closeAfter {
            machine.close()
            endResponse(context: context, thenClose: true)
            return
        }
        endResponse(context: context, thenClose: false)
        if machine.answer() { requestCompleted(context: context) } else if machine.releaseRead() { context.read() }
    }

    /// The connection is free for the next request.
    func requestCompleted(context: ChannelHandlerContext) {
        lastActivity = .now()
        if malformedInput {
            machine.close()
            closeConnection(context)
            return
        }
        switch machine.next() {
        case .none: break
        case .close:
            closeConnection(context)
        case .replay(let parts):
            for part in parts { receive(part, context: context) }
            flushUpload()
            if passedOn {
                passedOn = false
                context.fireChannelReadComplete()
            }
        }
        if machine.releaseRead() { context.read() }
    }

    func read(context: ChannelHandlerContext) {
        if machine.read() { context.read() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inClientRead = false
        flushUpload()
        // Only when the router got something: an API-only read would wake Hummingbird's async
        // channel for nothing.
        if passedOn {
            passedOn = false
            context.fireChannelReadComplete()
        }
    }

    /// Flushes what went upstream (once the loop has handled its ready sockets); an upstream that
    /// cannot take more holds the client's reads until it can (its writability counts what waits
    /// for the flush).
    private func flushUpload() {
        guard uploadUnflushed else { return }
        uploadUnflushed = false
        guard let upstream = current?.upstream else { return }
        upstream.flushSoon()
        if !upstream.isWritable { machine.pauseUpload() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // Hummingbird's connection-state handler would close with an API call in flight; it
            // never sees this event.
            if machine.quiesce() { closeConnection(context) }
        case let event as ChannelEvent where event == .inputClosed && current != nil:
            // The client closed its side while an API call is in progress (browsers never
            // half-close a connection they still expect an answer on): end it.
            abandonCurrent()
            closeConnection(context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch machine.state {
        case .idle, .routed:
            abandonCurrent()
            APICallHandlers.answerEarlyError(error, context: context)
        case .waiting, .forwarding:
            // Malformed bytes behind an API call in progress: its response is completed, then the
            // connection closes (a 400 now would land in the middle of that response).
            malformedInput = true
        case .answered, .closed:
            abandonCurrent()
            closeConnection(context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandonCurrent()
        cancelChecks()
        context.fireChannelInactive()
    }

    func abandonCurrent() {
        _ = machine.clientGone()
        guard let current else { return }
        self.current = nil
        current.stop()
    }

    // MARK: outbound (the router's responses)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        if case .end = unwrapOutboundIn(data), case .routed = machine.state {
            machine.routerResponseEnded()
            requestCompleted(context: context)
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
}

extension HTTPRequestHead {
    /// A request asking to switch protocols (`Connection: upgrade` and `Upgrade`): NIO's parser
    /// reads nothing after it, so its connection cannot serve another request.
    var endsHTTPParsing: Bool {
        headers.contains(name: "upgrade")
            && headers["connection"].contains { $0.lowercased().contains("upgrade") }
    }
}

extension APICallRequest {
    /// The planner's view of a NIO request head.
    init(_ head: HTTPRequestHead, remoteAddress: String?) {
        var fields: [Field] = []
        fields.reserveCapacity(head.headers.count)
        for (name, value) in head.headers { fields.append(Field(name: name, value: value)) }
        self.init(
            method: head.method.rawValue, target: head.uri, fields: fields, remoteAddress: remoteAddress,
            isUpgrade: false)
    }
}
