import NIOCore
import NIOPosix
import Synchronization

/// A raw client connection for fault tests: sends whatever bytes the test wants, counts what comes
/// back, can stop reading, and ends with a reset (SO_LINGER 0: an RST, no FIN) — a client that
/// goes away at the worst moment.
struct RawConnection {
    let channel: any Channel
    let received: ReceivedBytes

    /// What came back, as seen on the connection's event loop.
    final class ReceivedBytes: Sendable {
        private let state = Mutex((count: 0, head: ""))
        var count: Int { state.withLock { $0.count } }
        /// The first 4 KiB received (enough for a status line and headers).
        var head: String { state.withLock { $0.head } }
        /// The status code of the first response, if its status line arrived.
        var status: Int? {
            let text = head
            guard text.hasPrefix("HTTP/1.1 "), text.utf8.count >= 12 else { return nil }
            return Int(text.dropFirst(9).prefix(3))
        }

        func add(_ buffer: ByteBuffer) {
            state.withLock { state in
                state.count += buffer.readableBytes
                if state.head.utf8.count < 4096 { state.head += String(buffer: buffer) }
            }
        }
    }

    private final class Counter: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let received: ReceivedBytes
        init(received: ReceivedBytes) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { received.add(unwrapInboundIn(data)) }
    }

    /// Connects to 127.0.0.1:`port`. With `reading: false` nothing is read until ``read()``.
    static func open(port: Int, reading: Bool = true) async throws -> RawConnection {
        let received = ReceivedBytes()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: reading)
        // A paused reader with a small receive buffer: the gateway's writes back up quickly.
        if !reading { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: 4096) }
        let channel =
            try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Counter(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        if let provider = channel as? any SocketOptionProvider {
            try await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        return RawConnection(channel: channel, received: received)
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    func send(bytes count: Int) async throws {
        try await channel.writeAndFlush(ByteBuffer(repeating: UInt8(ascii: "u"), count: count))
    }

    /// Reads once (for connections opened with `reading: false`).
    func read() { channel.read() }

    /// Waits until at least `count` bytes arrived; false if they did not within `timeout`.
    func waitFor(bytes count: Int, timeout: Duration = .seconds(5)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while received.count < count {
            if ContinuousClock.now > deadline { return false }
            try await Task.sleep(for: .milliseconds(2))
        }
        return true
    }

    /// Closes with a reset.
    func reset() async {
        try? await channel.close()
    }
}
