import NIOCore
import NIOHTTP1
import Synchronization

/// What an upstream connection delivers, in order: a head, body parts, then the end — or a failure.
public enum UpstreamEvent: Sendable {
    /// The response head (interim 1xx heads are not delivered).
    case head(HTTPResponseHead)
    /// A part of the body.
    case body(ByteBuffer)
    /// The end of the response.
    case end
    /// The exchange failed.
    case failed(UpstreamError)
}

/// Receives an upstream response on the connection's event loop.
public protocol UpstreamResponseConsumer: AnyObject {
    /// Delivers an event. Returning false stops reading from the upstream until the exchange is
    /// resumed (back-pressure).
    func push(_ event: UpstreamEvent) -> Bool
    /// The upstream socket has no more bytes for now: a good moment to flush what was pushed.
    func readComplete()
    /// The upstream socket can take more of the request body again (upload back-pressure).
    func upstreamBecameWritable()
}

extension UpstreamResponseConsumer {
    /// Does nothing (consumers that write through a task flush on their own).
    public func readComplete() {}
    /// Does nothing (consumers that upload through a task wait on write futures instead).
    public func upstreamBecameWritable() {}
}

/// One upstream response, handed from the connection's event loop to the task that forwards it.
///
/// The event loop pushes parts; the task pulls them. When more than ``highWatermark`` bytes wait
/// unread, the handler stops reading from the socket until the task has drained them below
/// ``lowWatermark`` (back-pressure, so a slow client never makes the gateway buffer a whole body).
final class ResponseStream: UpstreamResponseConsumer, Sendable {
    typealias Event = UpstreamEvent

    private struct State {
        var events: [Event] = []
        var readIndex = 0
        var bufferedBytes = 0
        var waiter: CheckedContinuation<Event, Never>?
        var finished = false
        var receivedAnything = false
        var pausedReading = false
        var resumeReading: (@Sendable () -> Void)?
    }

    static let highWatermark = 256 * 1024
    static let lowWatermark = 64 * 1024

    private let state = Mutex(State())

    init() {}

    /// Sets what is called (from the consuming task) when reading should resume; it hops to the
    /// event loop. Set on the event loop before the first event is pushed.
    func onResume(_ resume: @escaping @Sendable () -> Void) {
        state.withLock { $0.resumeReading = resume }
    }

    /// Whether any response byte arrived (a request that saw nothing may be retried).
    var receivedAnything: Bool { state.withLock { $0.receivedAnything } }

    /// Delivers an event (event loop). Returns false when the socket should stop being read.
    @discardableResult
    func push(_ event: Event) -> Bool {
        let (waiter, keepReading): (CheckedContinuation<Event, Never>?, Bool) = state.withLock { state in
            if state.finished { return (nil, true) }
            switch event {
            case .end, .failed: state.finished = true
            case .head, .body: state.receivedAnything = true
            }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, true)
            }
            if case .body(let buffer) = event { state.bufferedBytes += buffer.readableBytes }
            state.events.append(event)
            if state.bufferedBytes > ResponseStream.highWatermark {
                state.pausedReading = true
                return (nil, false)
            }
            return (nil, true)
        }
        waiter?.resume(returning: event)
        return keepReading
    }

    /// If the rest of the response (body parts up to `.end`) is already here and no larger than
    /// `limit`, takes it all at once; nil otherwise (nothing is consumed then).
    func takeBufferedRemainder(limit: Int) -> ByteBuffer? {
        state.withLock { state in
            guard state.bufferedBytes <= limit, state.readIndex < state.events.count,
                case .end = state.events[state.events.count - 1]
            else { return nil }
            var collected: ByteBuffer?
            for index in state.readIndex..<(state.events.count - 1) {
                guard case .body(var buffer) = state.events[index] else { return nil }
                if collected == nil { collected = buffer } else { collected?.writeBuffer(&buffer) }
            }
            state.events.removeAll(keepingCapacity: true)
            state.readIndex = 0
            state.bufferedBytes = 0
            return collected ?? ByteBuffer()
        }
    }

    /// The next event (consuming task).
    func next() async -> Event {
        var resume: (@Sendable () -> Void)?
        let ready: Event? = state.withLock { state in
            guard state.readIndex < state.events.count else { return nil }
            let event = state.events[state.readIndex]
            state.readIndex += 1
            if state.readIndex == state.events.count {
                state.events.removeAll(keepingCapacity: true)
                state.readIndex = 0
            }
            if case .body(let buffer) = event { state.bufferedBytes -= buffer.readableBytes }
            if state.pausedReading && state.bufferedBytes < ResponseStream.lowWatermark {
                state.pausedReading = false
                resume = state.resumeReading
            }
            return event
        }
        resume?()
        if let ready { return ready }
        // Cancellation (a server shutting down past its grace period) fails the exchange, so no
        // task waits for ever on an upstream that stalls.
        return await withTaskCancellationHandler {
            await waitForEvent()
        } onCancel: {
            self.push(.failed(.unavailable))
        }
    }

    private func waitForEvent() async -> Event {
        await withCheckedContinuation { continuation in
            let immediate: Event? = state.withLock { state in
                if state.readIndex < state.events.count {
                    let event = state.events[state.readIndex]
                    state.readIndex += 1
                    if case .body(let buffer) = event { state.bufferedBytes -= buffer.readableBytes }
                    return event
                }
                state.waiter = continuation
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }
}
