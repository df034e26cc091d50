import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Sends raw bytes to 127.0.0.1:`port` and returns what comes back before the server closes or
/// two seconds pass (for malformed-request tests no HTTP client would send).
enum RawHTTP {
    /// A raw byte connection to 127.0.0.1:`port`.
    static func connect(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    static func exchange(port: Int, request: String) async throws -> String {
        let channel = try await connect(port: port)
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

extension RawHTTP {
    /// Sends `request` (which should end with a `Connection: close` request) and returns everything
    /// received until the server closes, or after `limit`.
    static func exchangeUntilClosed(port: Int, request: String, limit: Duration = .seconds(5)) async throws -> String {
        let channel = try await connect(port: port)
        let received = NIOLockedValueBox("")
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            return try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {  // justified: structured child task of the group
                    for try await buffer in inbound { received.withLockedValue { $0 += String(buffer: buffer) } }
                    return true
                }
                group.addTask {  // justified: structured child task of the group
                    try await Task.sleep(for: limit)
                    return false
                }
                let closed = try await group.next() ?? false
                group.cancelAll()
                // What arrived before the limit stays visible, so a failure shows how far it got.
                return received.withLockedValue { $0 } + (closed ? "" : "(no close within \(limit))")
            }
        }
    }
}
