import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Tells once when a response's body has ended: written in full (`complete`), or cut short (its
/// write failed: the client left or the upstream broke off; or the server dropped the body
/// unwritten), with the body bytes handed to the server until then, and whether the head was
/// written (Hummingbird runs a body only after writing its head: a body that never ran means the
/// client was gone before the head). Durations, spans and access logs end here, not at the head.
final class ResponseEnd: Sendable {
    private let state = Mutex<(bytes: Int, started: Bool, ended: Bool)>((0, false, false))
    private let ended: @Sendable (_ bytes: Int, _ complete: Bool, _ headWritten: Bool) -> Void

    init(_ ended: @escaping @Sendable (_ bytes: Int, _ complete: Bool, _ headWritten: Bool) -> Void) {
        self.ended = ended
    }

    /// The body started: its head was written.
    func start() { state.withLock { $0.started = true } }

    func add(_ bytes: Int) { state.withLock { $0.bytes += bytes } }

    func finish(complete: Bool) {
        let outcome: (bytes: Int, started: Bool)? = state.withLock { state in
            guard !state.ended else { return nil }
            state.ended = true
            return (state.bytes, state.started)
        }
        if let outcome { ended(outcome.bytes, complete, outcome.started) }
    }

    deinit { finish(complete: false) }  // the body was dropped without being written
}

/// Counts the bytes of a body on their way to the server's writer, and tells ``ResponseEnd`` the
/// body is complete just before the client can know it: before the write that completes a body of
/// known length, else before the end of a streamed one. (Reported after it, the client could read
/// the whole response and look at metrics or logs that do not have it yet.)
struct CountingBodyWriter: ResponseBodyWriter {
    var base: any ResponseBodyWriter
    let end: ResponseEnd
    /// Bytes still to come of a body with a declared length.
    var remaining: Int?

    mutating func write(_ buffer: ByteBuffer) async throws {
        end.add(buffer.readableBytes)
        if let left = remaining {
            remaining = left - buffer.readableBytes
            if left - buffer.readableBytes <= 0 { end.finish(complete: true) }
        }
        try await base.write(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        end.finish(complete: true)
        try await base.finish(trailingHeaders)
    }
}

extension Response {
    /// This response, with `ended` called once its body has been written or cut short.
    func observingEnd(
        _ ended: @escaping @Sendable (_ bytes: Int, _ complete: Bool, _ headWritten: Bool) -> Void
    ) -> Response {
        var response = self
        let original = body
        let end = ResponseEnd(ended)
        response.body = ResponseBody(contentLength: original.contentLength) { writer in
            end.start()
            do {
                try await original.write(
                    CountingBodyWriter(base: writer, end: end, remaining: original.contentLength))
                end.finish(complete: true)
            } catch {
                end.finish(complete: false)
                throw error
            }
        }
        return response
    }
}
