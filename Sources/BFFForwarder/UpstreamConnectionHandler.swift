import NIOCore
import NIOHTTP1

/// The last handler of an upstream connection's pipeline. Lives on the connection's event loop;
/// all its state is touched only there.
final class UpstreamConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private var stream: (any UpstreamResponseConsumer)?
    private var timeout: Scheduled<Void>?
    private var readPaused = false
    private var pendingRead = false
    private var context: ChannelHandlerContext?
    /// Whether the response just finished allows reusing the connection.
    private(set) var reusable = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Starts a request: the stream receives the response; the request head (and, with no body,
    /// its end) is written and flushed.
    func begin(stream: any UpstreamResponseConsumer, head: HTTPRequestHead, hasBody: Bool, timeout: TimeAmount) {
        guard let context else {
            _ = stream.push(.failed(.unavailable))
            return
        }
        self.stream = stream
        self.reusable = false
        self.timeout = context.eventLoop.scheduleTask(in: timeout) { [weak self] in
            guard let self, let stream = self.stream else { return }
            self.stream = nil
            _ = stream.push(.failed(.timeout))
            self.context?.close(promise: nil)
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !hasBody { context.write(wrapOutboundOut(.end(nil)), promise: nil) }
        context.flush()
    }

    /// Forgets the consumer (the client went away); the connection is then closed by its owner.
    func abandon() {
        stream = nil
        timeout?.cancel()
        timeout = nil
    }

    /// Resumes reading after the consumer drained the buffer.
    func resume() {
        guard readPaused else { return }
        readPaused = false
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let stream else { return }  // nothing expected: a misbehaving upstream; the pool drops it
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code < 200 { return }  // interim responses are not forwarded
            timeout?.cancel()
            timeout = nil
            reusable = head.isKeepAlive
            if !stream.push(.head(head)) { readPaused = true }
        case .body(let buffer):
            if !stream.push(.body(buffer)) { readPaused = true }
        case .end:
            self.stream = nil
            _ = stream.push(.end)
        }
    }

    func read(context: ChannelHandlerContext) {
        if readPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        reusable = false
        timeout?.cancel()
        if let stream {
            self.stream = nil
            _ = stream.push(.failed(.unavailable))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reusable = false
        if let stream {
            self.stream = nil
            _ = stream.push(.failed(.unavailable))
        }
        context.close(promise: nil)
    }
}
