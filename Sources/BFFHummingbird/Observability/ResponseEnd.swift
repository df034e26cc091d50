import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Tells once when a response's body has ended: written in full (`complete`), or cut short (its
/// write failed: the client left or the upstream broke off; or the server dropped the body
/// unwritten), with the body bytes handed to the server until then. Durations, spans and access
/// logs end here, not at the response head.
final class ResponseEnd: Sendable {
    private let state = Mutex<(bytes: Int, ended: Bool)>((0, false))
    private let ended: @Sendable (_ bytes: Int, _ complete: Bool) -> Void

    init(_ ended: @escaping @Sendable (_ bytes: Int, _ complete: Bool) -> Void) { self.ended = ended }

    func add(_ bytes: Int) { state.withLock { $0.bytes += bytes } }

    func finish(complete: Bool) {
        let bytes: Int? = state.withLock { state in
            guard !state.ended else { return nil }
            state.ended = true
            return state.bytes
        }
        if let bytes { ended(bytes, complete) }
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
    func observingEnd(_ ended: @escaping @Sendable (_ bytes: Int, _ complete: Bool) -> Void) -> Response {
        var response = self
        let original = body
        let end = ResponseEnd(ended)
        response.body = ResponseBody(contentLength: original.contentLength) { writer in
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
