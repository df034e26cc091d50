import NIOCore
import NIOPosix

/// Sends raw bytes to 127.0.0.1:`port` and returns what comes back before the server closes or
/// two seconds pass (for malformed-request tests no HTTP client would send).
enum RawHTTP {
    static func exchange(port: Int, request: String) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            return try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask {
                    var received = ""
                    for try await buffer in inbound {
                        received += String(buffer: buffer)
                        if received.contains("\r\n\r\n") { break }
                    }
                    return received
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(2))
                    return ""
                }
                let first = try await group.next() ?? ""
                group.cancelAll()
                return first
            }
        }
    }
}
