import NIOCore
import NIOEmbedded
import Testing

@testable import BFFForwarder

/// Flushes put off to the end of an event loop's round (``LoopFlushes``), on `EmbeddedEventLoop`s
/// whose tasks run only when a test says so: nothing is flushed before the round ends, every
/// channel that asked is flushed when it does, and each loop's flushes stay on that loop.
@Suite("Loop flushes")
struct LoopFlushesTests {
    /// Logs the writes and flushes that pass it, as "<name> write" and "<name> flush".
    final class Recorder: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        let name: String
        let log: Log
        init(_ name: String, _ log: Log) {
            self.name = name
            self.log = log
        }
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            log.entries.append("\(name) write")
            context.write(data, promise: promise)
        }
        func flush(context: ChannelHandlerContext) {
            log.entries.append("\(name) flush")
            context.flush()
        }
    }

    final class Log { var entries: [String] = [] }

    func channel(_ name: String, _ log: Log, on loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(Recorder(name, log))
        return channel
    }

    func write(_ text: String, to channel: EmbeddedChannel) {
        channel.write(ByteBuffer(string: text), promise: nil)
    }

    /// Writes `text`, then asks for `channel`'s flush at the round's end.
    func writeThenAskForAFlush(_ text: String, to channel: EmbeddedChannel) {
        write(text, to: channel)
        LoopFlushes.flushSoon(channel)
    }

    @Test func theFlushesOfARoundWaitForItsEndThenComeTogether() throws {
        let loop = EmbeddedEventLoop()
        let log = Log()
        let a = try channel("a", log, on: loop)
        let b = try channel("b", log, on: loop)
        writeThenAskForAFlush("1", to: a)
        writeThenAskForAFlush("2", to: b)
        writeThenAskForAFlush("3", to: a)
        #expect(log.entries == ["a write", "b write", "a write"])
        #expect(try a.readOutbound(as: ByteBuffer.self) == nil, "nothing reaches the socket before the round ends")
        loop.run()
        #expect(log.entries == ["a write", "b write", "a write", "a flush", "b flush", "a flush"])
        #expect(try a.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "1"))
        #expect(try a.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "3"))
        #expect(try b.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "2"))
    }

    @Test func aFlushAskedForWhileTheRoundFlushesIsMadeToo() throws {
        let loop = EmbeddedEventLoop()
        let log = Log()
        let a = try channel("a", log, on: loop)
        let b = try channel("b", log, on: loop)
        // Flushing `a` completes its write, and that write's completion asks for `b`'s flush (as a
        // writability change that resumes an upload would).
        let written = loop.makePromise(of: Void.self)
        written.futureResult.whenSuccess {
            self.writeThenAskForAFlush("2", to: b)
        }
        a.write(ByteBuffer(string: "1"), promise: written)
        LoopFlushes.flushSoon(a)
        loop.run()
        #expect(log.entries == ["a write", "a flush", "b write", "b flush"])
        #expect(try b.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "2"))
        // And the next round starts afresh.
        writeThenAskForAFlush("3", to: a)
        #expect(try a.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "1"))
        #expect(try a.readOutbound(as: ByteBuffer.self) == nil)
        loop.run()
        #expect(try a.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "3"))
    }

    @Test func eachLoopOnOneThreadFlushesOnlyItsOwnChannels() throws {
        let first = EmbeddedEventLoop()
        let second = EmbeddedEventLoop()
        let log = Log()
        let a = try channel("a", log, on: first)
        let b = try channel("b", log, on: second)
        let c = try channel("c", log, on: first)
        for (text, channel) in [("1", a), ("2", b), ("3", c)] {
            writeThenAskForAFlush(text, to: channel)
        }
        second.run()
        #expect(log.entries.filter { $0.hasSuffix("flush") } == ["b flush"], "the second loop's round flushes b only")
        first.run()
        #expect(log.entries.filter { $0.hasSuffix("flush") } == ["b flush", "a flush", "c flush"])
        #expect(try c.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "3"))
    }

    @Test func aClosedChannelIsFlushedWithoutHarm() throws {
        let loop = EmbeddedEventLoop()
        let log = Log()
        let a = try channel("a", log, on: loop)
        let b = try channel("b", log, on: loop)
        writeThenAskForAFlush("1", to: a)
        writeThenAskForAFlush("2", to: b)
        try a.close().wait()
        loop.run()
        #expect(try b.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "2"))
    }
}
