import BFFCore
import BFFForwarder
import NIOCore
import NIOHTTP1

// What an ``APIExchange`` calls on its handler, on the same event loop: writes, flow control, the
// response's end and the ways a call can fail.
extension APICallHandler {

    func write(_ part: HTTPServerResponsePart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() { context?.flush() }

    /// Closes the connection, flushing first: what this handler wrote may still wait for
    /// ``LoopFlushes``, and a close fails writes that were not flushed. Every close the handler
    /// makes goes through here; closes from the handlers behind it flush in
    /// ``close(context:mode:promise:)``.
    func closeConnection(_ context: ChannelHandlerContext) {
        context.flush()
        context.close(promise: nil)
    }

    /// A close from the handlers behind (Hummingbird's) flushes what this handler wrote first.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        context.flush()
        context.close(mode: mode, promise: promise)
    }
    /// Flushes once the event loop has handled its ready sockets (``LoopFlushes``).
    func flushSoon() { if let context { LoopFlushes.flushSoon(context.channel) } }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    var eventLoop: (any EventLoop)? { context?.eventLoop }

    func isCurrent(_ exchange: APIExchange) -> Bool { current === exchange }

    /// The upstream can take more of the request body.
    func uploadCanResume(_ exchange: APIExchange) {
        guard current === exchange, let context else { return }
        if machine.resumeUpload() { context.read() }
    }

    /// The upstream response ended.
    func responseEnded(_ exchange: APIExchange) {
        guard current === exchange, let context else { return }
        current = nil
        if exchange.closesConnection {
            machine.close()
            endResponse(context: context, thenClose: true)
        } else if machine.responseEnded() {
            endResponse(context: context, thenClose: false)
            requestCompleted(context: context)
        } else {
            // A complete response before the whole request body came (an early 413): the rest of
            // the body cannot be told from the next request without reading it; close.
            endResponse(context: context, thenClose: true)
        }
    }

    /// Writes a response's end, flushed when the loop's round ends (``LoopFlushes``); with
    /// `thenClose`, flushed at once and the connection closed once it is written (a close right
    /// away would drop what the socket has not taken yet).
    func endResponse(context: ChannelHandlerContext, thenClose: Bool) {
        guard thenClose else {
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            LoopFlushes.flushSoon(context.channel)
            return
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        let channel = context.channel
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    /// The exchange failed before its head: answer with `problem`.
    func failed(_ exchange: APIExchange, problem: Problem) {
        guard current === exchange, let context else { return }
        answer(exchange, problem, cookies: exchange.plan?.cookies ?? [], api: exchange.plan?.api, context: context)
    }

    /// The response cannot be completed (the upstream failed mid-response, or the client stopped
    /// reading): close the connection.
    func abort(_ exchange: APIExchange) {
        guard current === exchange, let context else { return }
        abandonCurrent()
        closeConnection(context)
    }
}

extension APICallHandler {
    /// Runs `body` on this handler's event loop after the current call stack.
    func deferOnLoop(_ body: @escaping () -> Void) {
        guard let context else { return }
        let bound = NIOLoopBound(body, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value() }
    }
}
