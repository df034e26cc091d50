import NIOCore
import NIOHTTP1

/// The last handler of an upstream connection's pipeline. Lives on the connection's event loop;
/// all its state is touched only there.
///
/// One exchange at a time: ``begin(stream:head:hasBody:timeout:)`` starts it, `.end`, a failure,
/// the progress timeout or ``abandon()`` ends it. The route's timeout bounds the wait for the head
/// and then every pause of the upstream between two reads of the body (an upstream that stalls
/// mid-body is cut off); while the consumer holds reading back (a slow client), the clock stops —
/// the client side bounds that wait itself. ``isReusable`` tells whether the connection is in a
/// verified clean state to go back to its pool.
final class UpstreamConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private var stream: (any UpstreamResponseConsumer)?
    /// Counts exchanges, so a late ``resume(generation:)`` of an earlier one changes nothing.
    private(set) var generation = 0
    private var timeout: TimeAmount = .seconds(30)
    /// On the event loop's clock (`eventLoop.now`), so tests can drive it.
    private var lastProgress = NIODeadline.uptimeNanoseconds(0)
    /// One timer per connection, re-armed lazily: an exchange that ends leaves it scheduled (it
    /// then finds no exchange and stops), so a keep-alive connection serving many short calls
    /// neither schedules nor cancels a task per call (each is a heap insertion and a linear
    /// search in the event loop's timer queue).
    private var progressCheck: Scheduled<Void>?
    private var progressCheckDeadline = NIODeadline.distantFuture
    private var readPaused = false
    private var pendingRead = false
    /// The last exchange received its `.end`.
    private var completed = true
    /// The request's `.end` was written: a connection whose request body was cut short must never
    /// carry another request (the upstream would read that request as the rest of the body).
    private var requestEnded = true
    /// Bytes arrived outside an exchange: the connection can never be trusted again.
    private var unexpectedData = false
    /// Whether the response just finished allows keep-alive.
    private var keepAlive = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        fail(.unavailable)  // an exchange still running would otherwise wait for ever (no timer left)
        self.context = nil
    }

    /// Whether the connection may serve another request: the last response ended with keep-alive,
    /// no exchange is in progress, reading is on with nothing held back, nothing unexpected
    /// arrived, and the channel is open.
    var isReusable: Bool {
        guard let context else { return false }
        return context.channel.isActive && stream == nil && completed && requestEnded && keepAlive && !readPaused
            && !pendingRead && !unexpectedData
    }

    /// Starts a request: the stream receives the response; the request head (and, with no body,
    /// its end) is written, and flushed once the event loop has handled its ready sockets
    /// (``LoopFlushes``) unless `flush` is false (a caller that writes the body next flushes
    /// head and body together). Returns the exchange's generation (for
    /// ``resume(generation:)``).
    @discardableResult
    func begin(
        stream: any UpstreamResponseConsumer, head: HTTPRequestHead, hasBody: Bool, timeout: TimeAmount,
        flush: Bool = true
    ) -> Int {
        generation &+= 1
        // A connection the upstream closed between its lease and this call (its inactivity was
        // already reported, to no one) fails at once instead of waiting for an answer.
        guard let context, context.channel.isActive, self.stream == nil, !unexpectedData else {
            _ = stream.push(.failed(.unavailable))
            return generation
        }
        self.stream = stream
        self.keepAlive = false
        self.completed = false
        self.requestEnded = false
        self.timeout = timeout
        // A fresh exchange reads: nothing of the last one may hold the socket back.
        readPaused = false
        if pendingRead {
            pendingRead = false
            context.read()
        }
        lastProgress = context.eventLoop.now
        armProgressCheck(by: lastProgress + timeout)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !hasBody {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)  // not through our own write(): mark it here
            requestEnded = true
        }
        if flush || !hasBody { LoopFlushes.flushSoon(context.channel) }
        return generation
    }

    /// Forgets the consumer (the client went away); the connection is then closed by its owner.
    func abandon() {
        stream = nil
    }

    /// Resumes reading after the consumer of exchange `generation` drained its buffer.
    func resume(generation: Int) {
        guard generation == self.generation, readPaused else { return }
        readPaused = false
        lastProgress = context?.eventLoop.now ?? .now()  // the upstream's clock restarts when we read again
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let stream else {
            // Nothing expected: a misbehaving upstream (or the rest of an abandoned response).
            unexpectedData = true
            context.close(promise: nil)
            return
        }
        lastProgress = context.eventLoop.now
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code == 101 {
                // Switching protocols on a request that asked for nothing of the kind.
                keepAlive = false
                fail(.unavailable)
                context.close(promise: nil)
                return
            }
            if head.status.code < 200 { return }  // interim responses are not forwarded
            keepAlive = head.isKeepAlive
            if !stream.push(.head(head)) { readPaused = true }
        case .body(let buffer):
            if !stream.push(.body(buffer)) { readPaused = true }
        case .end:
            // Read before the push: the consumer may start the next exchange on this connection
            // synchronously, which resets the flag for that one.
            let uploadCutShort = !requestEnded
            self.stream = nil
            completed = true
            // The response is complete: nothing is left to hold reading back for.
            readPaused = false
            if pendingRead {
                pendingRead = false
                context.read()
            }
            _ = stream.push(.end)
            if uploadCutShort {
                // A complete response before the whole request body went up (an early 413, an
                // upstream that stops reading): the exchange is over; closing ends the upload,
                // which could otherwise wait for ever on an upstream that reads no more.
                context.close(promise: nil)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        stream?.readComplete()  // a response that pauses mid-body (a stream, a stall) reaches the client
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastProgress = context.eventLoop.now  // a request body still going up is progress too
        if case .end = unwrapOutboundIn(data) { requestEnded = true }
        context.write(data, promise: promise)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { stream?.upstreamBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if readPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepAlive = false
        fail(.unavailable)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        keepAlive = false
        fail(.unavailable)
        context.close(promise: nil)
    }

    private func fail(_ error: UpstreamError) {
        cancelProgressCheck()
        if let stream {
            self.stream = nil
            _ = stream.push(.failed(error))
        }
    }

    private func cancelProgressCheck() {
        progressCheck?.cancel()
        progressCheck = nil
        progressCheckDeadline = .distantFuture
    }

    /// Makes sure a check runs by `deadline`: keeps a scheduled one that is due no later.
    private func armProgressCheck(by deadline: NIODeadline) {
        if progressCheck != nil, progressCheckDeadline <= deadline { return }
        scheduleProgressCheck(at: deadline)
    }

    private func scheduleProgressCheck(at deadline: NIODeadline) {
        guard let context else { return }
        progressCheck?.cancel()
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        progressCheckDeadline = deadline
        progressCheck = loop.scheduleTask(deadline: deadline) {
            let handler = handler.value
            handler.progressCheck = nil
            handler.progressCheckDeadline = .distantFuture
            guard handler.stream != nil else { return }  // no exchange: the next one arms it again
            let now = loop.now
            if handler.readPaused && handler.requestEnded {
                // Our side holds reading back: not the upstream's delay. (While the request body
                // is still going up it is not exempt: an upstream echoing the body as it reads it
                // and a consumer holding the echo back would wait on each other for ever.)
                handler.lastProgress = now
                handler.scheduleProgressCheck(at: now + handler.timeout)
            } else if now - handler.lastProgress >= handler.timeout {
                handler.keepAlive = false
                handler.fail(.timeout)
                handler.context?.close(promise: nil)
            } else {
                handler.scheduleProgressCheck(at: handler.lastProgress + handler.timeout)
            }
        }
    }
}
