import BFFCore
import NIOCore
import NIOHTTP1

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
            let exchange = FastExchange(handler: self, request: head, api: plan.api)
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
        if let retryAfter = problem.retryAfter { headers.add(name: "Retry-After", value: String(retryAfter)) }
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

extension APIFastPathHandler {
    /// Runs `body` on this handler's event loop after the current call stack.
    func deferOnLoop(_ body: @escaping () -> Void) {
        guard let context else { return }
        let bound = NIOLoopBound(body, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value() }
    }
}
