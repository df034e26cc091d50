import NIOCore
import NIOPosix

/// A minimal WebSocket client over a raw socket, so tests choose every handshake header exactly
/// (library clients set `Origin` themselves). Text frames under 126 bytes only; a close frame is
/// reported as the text `close:<code>`.
enum RawWebSocket {
    /// Handshakes with `headers`; if the server switches protocols, sends each message and reads
    /// one text frame after the greeting and after each message. Returns the status and the texts.
    /// With `then`: after the messages, runs it and waits (at most `wait`) for one more frame —
    /// how a test sees the server close the socket on its own.
    static func session(
        port: Int, path: String, headers: [(String, String)], messages: [String],
        then: (@Sendable () async throws -> Void)? = nil, wait: TimeAmount = .seconds(5)
    ) async throws
        -> (status: Int, received: [String])
    {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var request = "GET \(path) HTTP/1.1\r\nHost: localhost:\(port)\r\nUpgrade: websocket\r\n"
            request +=
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            for (name, value) in headers { request += "\(name): \(value)\r\n" }
            try await outbound.write(ByteBuffer(string: request + "\r\n"))
            var iterator = inbound.makeAsyncIterator()
            var pending: [UInt8] = []
            // The response head.
            while !pending.containsHeadEnd {
                guard let buffer = try await iterator.next() else { return (0, []) }
                pending += Array(buffer.readableBytesView)
            }
            let headEnd = pending.headEndIndex
            let head = String(decoding: pending[..<headEnd], as: UTF8.self)
            pending.removeFirst(headEnd + 4)
            let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
            guard status == 101 else { return (status, []) }
            var received: [String] = []
            func readText() async throws -> String? {
                while true {
                    if pending.count >= 2 {
                        let length = Int(pending[1] & 0x7F)
                        if length < 126, pending.count >= 2 + length {
                            let payload = Array(pending[2..<(2 + length)])
                            let opcode = pending[0] & 0x0F
                            pending.removeFirst(2 + length)
                            if opcode == 8 {  // close: reported as "close:<code>"
                                let code = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
                                return "close:\(code)"
                            }
                            return opcode == 1 ? String(decoding: payload, as: UTF8.self) : nil
                        }
                    }
                    guard let buffer = try await iterator.next() else { return nil }
                    pending += Array(buffer.readableBytesView)
                }
            }
            if let greeting = try await readText() { received.append(greeting) }
            for message in messages {
                let payload = Array(message.utf8)
                let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
                var frame: [UInt8] = [0x81, 0x80 | UInt8(payload.count)] + mask
                frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
                try await outbound.write(ByteBuffer(bytes: frame))
                if let answer = try await readText() { received.append(answer) }
            }
            if let then {
                try await then()
                let closer = channel.channel.eventLoop.scheduleTask(in: wait) { channel.channel.close(promise: nil) }
                if let answer = try? await readText() { received.append(answer) }
                closer.cancel()
            }
            try? await outbound.write(ByteBuffer(bytes: [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]))  // close 1000
            return (status, received)
        }
    }
}

extension [UInt8] {
    fileprivate var headEndIndex: Int {
        guard count >= 4 else { return count }
        for index in 0...(count - 4)
        where self[index] == 13 && self[index + 1] == 10 && self[index + 2] == 13 && self[index + 3] == 10 {
            return index
        }
        return count
    }
    fileprivate var containsHeadEnd: Bool { headEndIndex < count }
}
