import NIOCore
import NIOPosix
import Synchronization

/// An upstream that answers the first request on each connection with a keep-alive response and
/// closes the connection, without answering, when a second request arrives on it — the race an
/// upstream's keep-alive timeout causes when it fires just as the proxy reuses the connection.
final class StaleConnectionUpstream: Sendable {
    let channel: any Channel
    let connections = Mutex(0)

    var port: Int { channel.localAddress?.port ?? 0 }

    init() async throws {
        let counter = Mutex(0)
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                counter.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        _ = counter
    }

    func close() async { try? await channel.close() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var received: [UInt8] = []
        var answered = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += Array(unwrapInboundIn(data).readableBytesView)
            while let end = headerEnd() {
                received.removeFirst(end)
                if answered == 0 {
                    answered += 1
                    let body = "fresh"
                    let response =
                        "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nConnection: keep-alive\r\n\r\n\(body)"
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
                } else {
                    context.close(promise: nil)  // the keep-alive race: request received, connection closed
                    return
                }
            }
        }

        func headerEnd() -> Int? {
            guard received.count >= 4 else { return nil }
            for index in 0...(received.count - 4)
            where received[index] == 13 && received[index + 1] == 10 && received[index + 2] == 13
                && received[index + 3] == 10
            {
                return index + 4
            }
            return nil
        }
    }
}
