import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import BFFForwarder

/// The upstream connection's handler on `EmbeddedChannel`, one event order per test: whether the
/// connection ends an exchange in a verified clean state (the pool's condition for reuse), and how
/// it meets stalls, back-pressure, late resumes and bytes nobody asked for.
@Suite("Upstream connection handler, event by event")
struct UpstreamConnectionHandlerTests {
    /// Records what the handler delivers; answers `false` (stop reading) while `pausing`.
    final class Consumer: UpstreamResponseConsumer {
        var events: [String] = []
        var pausing = false
        func push(_ event: UpstreamEvent) -> Bool {
            switch event {
            case .head(let head): events.append("head \(head.status.code)")
            case .body(let buffer): events.append("body \(buffer.readableBytes)")
            case .end: events.append("end")
            case .failed(let error): events.append("failed \(error)")
            }
            return !pausing
        }
    }

    /// Counts `read()` calls that reach the socket (sits between the socket and the handler).
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    struct Setup {
        let channel: EmbeddedChannel
        let handler: UpstreamConnectionHandler
        let reads: ReadCounter
        let loop: EmbeddedEventLoop
    }

    func setup() throws -> Setup {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let reads = ReadCounter()
        let handler = UpstreamConnectionHandler()
        try channel.pipeline.syncOperations.addHandler(reads)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
        return Setup(channel: channel, handler: handler, reads: reads, loop: loop)
    }

    let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x")
    let okHead = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "4"])

    @Test func aCompleteKeepAliveExchangeLeavesTheConnectionReusable() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        #expect(!s.handler.isReusable, "not while the response is under way")
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "abcd")))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(consumer.events == ["head 200", "body 4", "end"])
        #expect(s.handler.isReusable)
    }

    /// The review's bug: a slow client makes the consumer pause on the last body part, and the
    /// end arrives in the same read. Reading must be on again once the response is complete, or
    /// the next request on this connection (another user's) waits for ever.
    @Test func pausedOnTheLastBodyPartWithTheEndInTheSameReadResumesReading() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        consumer.pausing = true
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "abcd")))
        let readsBefore = s.reads.reads
        s.channel.read()  // NIO asks to read again: held back while paused
        #expect(s.reads.reads == readsBefore, "held back while the consumer is full")
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(s.reads.reads == readsBefore + 1, "the held read goes out once the response is complete")
        #expect(s.handler.isReusable, "clean: reading on, nothing held back")
        s.channel.read()
        #expect(s.reads.reads == readsBefore + 2, "reads pass straight through afterwards")
    }

    @Test func aNewExchangeNeverInheritsAPausedRead() throws {
        let s = try setup()
        let first = Consumer()
        s.handler.begin(stream: first, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        first.pausing = true
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "ab")))
        s.channel.read()
        s.handler.abandon()  // the client went away mid-body while paused
        #expect(!s.handler.isReusable, "an abandoned exchange never goes back to the pool")
        let readsBefore = s.reads.reads
        let second = Consumer()
        s.handler.begin(stream: second, head: request, hasBody: false, timeout: .seconds(5))
        #expect(s.reads.reads == readsBefore + 1, "begin() issues the held read")
    }

    @Test func aLateResumeOfAnEarlierExchangeDoesNotUnpauseTheCurrentOne() throws {
        let s = try setup()
        let first = Consumer()
        let firstGeneration = s.handler.begin(stream: first, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        let second = Consumer()
        let secondGeneration = s.handler.begin(stream: second, head: request, hasBody: false, timeout: .seconds(5))
        #expect(secondGeneration != firstGeneration)
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        second.pausing = true
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "ab")))
        let readsBefore = s.reads.reads
        s.channel.read()
        s.handler.resume(generation: firstGeneration)
        #expect(s.reads.reads == readsBefore, "still paused for the second exchange")
        s.handler.resume(generation: secondGeneration)
        #expect(s.reads.reads == readsBefore + 1)
    }

    @Test func bytesOutsideAnExchangeCloseTheConnection() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(s.handler.isReusable)
        // A second, unrequested response (an upstream that answers twice).
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        #expect(!s.handler.isReusable)
        #expect(!s.channel.isActive, "closed")
    }

    @Test func noHeadWithinTheTimeoutFailsWithATimeout() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(2))
        s.loop.advanceTime(by: .milliseconds(1999))
        #expect(consumer.events.isEmpty)
        s.loop.advanceTime(by: .milliseconds(1))
        #expect(consumer.events == ["failed upstream timed out"])
        #expect(!s.channel.isActive)
    }

    /// The progress timer outlives an exchange (one per connection, not one per call): the next
    /// exchange on the connection is still timed from its own start, also when its timeout is
    /// shorter than the one the timer was armed for, and a timer that finds no exchange is inert.
    @Test(arguments: [1, 9])
    func theNextExchangeIsTimedFromItsOwnStartWithItsOwnTimeout(secondsLater: Int64) throws {
        let s = try setup()
        let first = Consumer()
        s.handler.begin(stream: first, head: request, hasBody: false, timeout: .seconds(10))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "abcd")))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(s.handler.isReusable, "a timer left armed does not keep the connection from its pool")
        s.loop.advanceTime(by: .seconds(secondsLater))
        // A second exchange with a 2 s timeout: due before the first one's 10 s (1 s later), or
        // after it (9 s later).
        let second = Consumer()
        s.handler.begin(stream: second, head: request, hasBody: false, timeout: .seconds(2))
        s.loop.advanceTime(by: .milliseconds(1999))
        #expect(second.events.isEmpty, "not cut before its own 2 s")
        s.loop.advanceTime(by: .milliseconds(1))
        #expect(second.events == ["failed upstream timed out"], "cut at its own 2 s")
        #expect(first.events == ["head 200", "body 4", "end"])
    }

    @Test func anIdleConnectionOutlivesItsLastExchangesTimer() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(2))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        s.loop.advanceTime(by: .seconds(60))
        #expect(s.channel.isActive, "nothing in progress: the timer closes nothing")
        #expect(s.handler.isReusable)
        // And the next exchange after the long pause is timed again.
        let next = Consumer()
        s.handler.begin(stream: next, head: request, hasBody: false, timeout: .seconds(2))
        s.loop.advanceTime(by: .seconds(2))
        #expect(next.events == ["failed upstream timed out"])
    }

    /// The review's second availability gap: the timeout used to end at the head, so an upstream
    /// that stalled mid-body held its connection (and the client's) for ever.
    @Test func anUpstreamStallingAfterTheHeadFailsAfterTheTimeoutWithoutProgress() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(2))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        for _ in 0..<5 {  // progress every 1.5 s keeps it alive
            s.loop.advanceTime(by: .milliseconds(1500))
            try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "a")))
        }
        #expect(!consumer.events.contains { $0.hasPrefix("failed") })
        s.loop.advanceTime(by: .seconds(2))
        #expect(consumer.events.last == "failed upstream timed out")
        #expect(!s.channel.isActive)
        #expect(!s.handler.isReusable)
    }

    @Test func aConsumerHoldingReadingBackIsNotTheUpstreamsDelay() throws {
        let s = try setup()
        let consumer = Consumer()
        let generation = s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(2))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        consumer.pausing = true
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "a")))
        s.loop.advanceTime(by: .seconds(10))
        #expect(!consumer.events.contains { $0.hasPrefix("failed") }, "a slow client is bounded elsewhere")
        consumer.pausing = false
        s.handler.resume(generation: generation)
        s.loop.advanceTime(by: .seconds(2))
        #expect(consumer.events.last == "failed upstream timed out", "the clock runs again after resuming")
    }

    @Test func theUpstreamClosingMidBodyFailsTheExchange() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(2))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "a")))
        s.channel.pipeline.fireChannelInactive()
        #expect(consumer.events.last == "failed upstream unavailable")
        #expect(!s.handler.isReusable)
        s.loop.advanceTime(by: .seconds(5))
        #expect(consumer.events.filter { $0.hasPrefix("failed") }.count == 1, "failed once")
    }

    @Test func aResponseWithoutKeepAliveIsNotReusable() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(2))
        var head = okHead
        head.headers.add(name: "connection", value: "close")
        try s.channel.writeInbound(HTTPClientResponsePart.head(head))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(consumer.events == ["head 200", "end"])
        #expect(!s.handler.isReusable)
    }

    /// The review's desync: the upstream answers (keep-alive) before the request body is all
    /// sent, and the upload then breaks off. The connection must never carry another request —
    /// the upstream would read the next user's request as the rest of this body.
    @Test func aResponseBeforeTheRequestBodyEndedNeverLeavesTheConnectionReusable() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: true, timeout: .seconds(5))
        try s.channel.writeOutbound(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: "partial"))))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "abcd")))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(consumer.events == ["head 200", "body 4", "end"])
        #expect(!s.handler.isReusable)
        #expect(!s.channel.isActive, "closed: the rest of the upload can never be sent")
    }

    @Test func aRequestWhoseBodyEndedIsReusableAfterItsResponse() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: true, timeout: .seconds(5))
        try s.channel.writeOutbound(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: "all"))))
        try s.channel.writeOutbound(HTTPClientRequestPart.end(nil))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(s.handler.isReusable)
    }

    /// An upstream that echoes the body while reading it, and a consumer holding the echo back:
    /// each waits for the other. While the upload is unfinished, held reading does not stop the
    /// clock: the exchange fails after the timeout instead of waiting for ever.
    @Test func heldReadingDuringAnUnfinishedUploadStillTimesOut() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: true, timeout: .seconds(2))
        try s.channel.writeOutbound(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: "x"))))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        consumer.pausing = true
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "x")))
        s.loop.advanceTime(by: .seconds(3))
        #expect(consumer.events.last == "failed upstream timed out")
        #expect(!s.channel.isActive)
    }

    // MARK: the second review's findings

    /// A pooled connection the upstream closed between its lease and the exchange's start: the
    /// exchange fails at once (it used to wait for an answer that could never come).
    @Test func startingOnAClosedConnectionFailsAtOnce() throws {
        // A channel that is not active while the handler is still in its pipeline (the moment
        // between the close and the handler's removal).
        let channel = EmbeddedChannel()
        let handler = UpstreamConnectionHandler()
        try channel.pipeline.syncOperations.addHandler(handler)
        #expect(!channel.isActive)
        let consumer = Consumer()
        handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(5))
        #expect(consumer.events == ["failed upstream unavailable"])
    }

    /// The handler leaving the pipeline (the channel closing) fails an exchange still running: its
    /// progress timer goes with it, so nothing else would ever end it.
    @Test func removalFailsARunningExchange() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.pipeline.syncOperations.removeHandler(s.handler).wait()
        #expect(consumer.events == ["failed upstream unavailable"])
    }

    /// A consumer that starts the next exchange on this connection as the last one ends (pipelined
    /// calls): the new exchange's upload must not be mistaken for the old one cut short.
    @Test func theNextExchangeStartedAtTheEndKeepsItsConnection() throws {
        let s = try setup()
        final class Chaining: UpstreamResponseConsumer {
            var onEnd: (() -> Void)?
            var events: [String] = []
            func push(_ event: UpstreamEvent) -> Bool {
                if case .end = event { onEnd?() }
                events.append("\(event)".prefix(4).description)
                return true
            }
        }
        let first = Chaining()
        let second = Consumer()
        first.onEnd = { [handler = s.handler, request] in
            handler.begin(stream: second, head: request, hasBody: true, timeout: .seconds(5))
        }
        s.handler.begin(stream: first, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.writeInbound(HTTPClientResponsePart.head(okHead))
        try s.channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "abcd")))
        try s.channel.writeInbound(HTTPClientResponsePart.end(nil))
        #expect(s.channel.isActive, "the second exchange's connection stays open")
        #expect(second.events.isEmpty, "and it has not failed")
    }

    /// `101 Switching Protocols` to a plain request: the exchange fails (502) and the connection closes.
    @Test func anUnaskedSwitchingProtocolsFailsTheExchange() throws {
        let s = try setup()
        let consumer = Consumer()
        s.handler.begin(stream: consumer, head: request, hasBody: false, timeout: .seconds(5))
        try s.channel.writeInbound(
            HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols)))
        #expect(consumer.events == ["failed upstream unavailable"])
        #expect(!s.channel.isActive)
    }
}
