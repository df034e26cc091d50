import NIOCore
import NIOHTTP1

/// The request side of one client connection of the gateway's API handler, as a value-type state
/// machine (STYLE rule 7): which request is in progress, where its body goes, what waits behind
/// it. Events return actions; ``APICallHandler`` performs them. No I/O, no timers.
///
/// One request at a time: parts of later (pipelined) requests are queued, with reading held,
/// until the current one is done — whether the router or the API path serves it — so responses
/// stay in order and every API call, pipelined or not, is decided by the planner.
struct APIConnectionStateMachine {
    enum State: Equatable {
        /// No request in progress.
        case idle
        /// The router serves the request (not an API route); its parts pass on.
        case routed(requestOpen: Bool, responseOpen: Bool)
        /// The planner's work or an upstream connection is awaited; body parts are buffered.
        case waiting(requestOpen: Bool)
        /// Forwarded upstream; body parts go up as they come.
        case forwarding(requestOpen: Bool)
        /// Answered by the gateway (a refusal, a failed upstream); the rest of the body is dropped.
        case answered(requestOpen: Bool)
        /// The connection is closing or closed: everything is dropped.
        case closed
    }

    private(set) var state = State.idle
    /// Parts of later requests, in order.
    private(set) var queued = CircularBuffer<HTTPServerRequestPart>()
    /// Body parts of the waiting request.
    private(set) var buffered: [HTTPServerRequestPart] = []
    /// A `read` was held back (a request waits, or parts are queued, or the upstream is full).
    private(set) var readHeld = false
    /// Reading paused because the upstream cannot take more of the body.
    private(set) var uploadPaused = false
    /// Graceful shutdown asked for: close once idle.
    private(set) var quiescing = false

    /// Nothing in progress and nothing queued.
    var isIdle: Bool { state == .idle && queued.isEmpty }

    enum ReceiveAction: Equatable {
        /// Nothing to do (queued, buffered or dropped).
        case none
        /// A new request: ask the planner, then report with ``pass()``, ``forward()``, ``suspend()``
        /// or ``answer()``.
        case decide(HTTPRequestHead)
        /// Hand the part to the router.
        case passOn(HTTPServerRequestPart)
        /// Send the body part upstream.
        case upload(ByteBuffer)
        /// Send the end of the body upstream.
        case uploadEnd
        /// The answered request is complete: the connection is free (see ``next()``).
        case requestDone
    }

    /// A part arrived from the client.
    mutating func received(_ part: HTTPServerRequestPart) -> ReceiveAction {
        if !queued.isEmpty {
            queued.append(part)
            return .none
        }
        return apply(part)
    }

    /// A part of the request in progress (or a new head): the transition, without the queue check
    /// (the current request's own buffered parts come before anything queued behind it).
    private mutating func apply(_ part: HTTPServerRequestPart) -> ReceiveAction {
        switch (state, part) {
        case (.closed, _):
            return .none
        case (.idle, .head(let head)):
            if quiescing { return .none }
            return .decide(head)
        case (.idle, _):
            return .none  // nothing of a request in progress can arrive here
        case (_, .head):
            queued.append(part)
            return .none
        case (.routed(true, let responseOpen), _):
            if case .end = part { state = responseOpen ? .routed(requestOpen: false, responseOpen: true) : .idle }
            return .passOn(part)
        case (.waiting(true), _):
            buffered.append(part)
            if case .end = part { state = .waiting(requestOpen: false) }
            return .none
        case (.forwarding(true), .body(let buffer)):
            return .upload(buffer)
        case (.forwarding(true), .end):
            state = .forwarding(requestOpen: false)
            return .uploadEnd
        case (.answered(true), .end):
            state = .idle
            return .requestDone
        default:
            return .none  // a body part after the end cannot come from NIO's decoder; dropped
        }
    }

    /// The planner passed the request on: the router serves it.
    mutating func pass() {
        state = .routed(requestOpen: true, responseOpen: true)
    }

    /// The request waits (planner work, an upstream connection).
    mutating func suspend() {
        if case .idle = state { state = .waiting(requestOpen: true) }
    }

    /// The request goes upstream: returns what to do with the parts of it that arrived meanwhile
    /// (uploads, the end), in order — before anything queued behind it.
    mutating func forward() -> [ReceiveAction] {
        switch state {
        case .idle, .waiting:
            state = .forwarding(requestOpen: true)
            let parts = buffered
            buffered.removeAll()
            return parts.map { apply($0) }
        default:
            return []
        }
    }

    /// The request waited and goes to the router after all: returns the parts that arrived
    /// meanwhile, to pass on as they are.
    mutating func passAfterWaiting() -> [HTTPServerRequestPart] {
        guard case .waiting(let requestOpen) = state else {
            pass()
            return []
        }
        state = .routed(requestOpen: requestOpen, responseOpen: true)
        defer { buffered.removeAll() }
        return buffered
    }

    /// Whether the current request's end is still to come.
    var requestOpen: Bool {
        switch state {
        case .routed(let open, _), .waiting(let open), .forwarding(let open), .answered(let open): open
        case .idle, .closed: false
        }
    }

    /// The gateway answered the request itself. Returns whether the connection is free now (the
    /// request's end was seen), else the rest of the body is dropped as it comes.
    mutating func answer() -> Bool {
        buffered.removeAll()
        uploadPaused = false
        switch state {
        case .idle, .waiting(true), .forwarding(true), .routed(true, _):
            state = .answered(requestOpen: true)
            return false
        case .waiting(false), .forwarding(false), .routed(false, _), .answered:
            state = .idle
            return true
        case .closed:
            return false
        }
    }

    /// The upstream's response ended. Returns false when the request body was still coming (an
    /// early response): the connection must close (the upstream closed its side already).
    mutating func responseEnded() -> Bool {
        switch state {
        case .forwarding(false):
            state = .idle
            return true
        case .forwarding(true):
            state = .closed
            return false
        default:
            return state != .closed
        }
    }

    /// The router's response ended (its `.end` was written).
    mutating func routerResponseEnded() {
        if case .routed(let requestOpen, true) = state {
            state = requestOpen ? .routed(requestOpen: true, responseOpen: false) : .idle
        }
    }

    /// The upstream cannot take more body / can again.
    mutating func pauseUpload() { uploadPaused = true }

    /// Returns whether a held read should be issued now.
    mutating func resumeUpload() -> Bool {
        uploadPaused = false
        return releaseRead()
    }

    /// The channel asks to read: false holds the read back.
    mutating func read() -> Bool {
        let hold: Bool
        switch state {
        case .waiting: hold = true
        case .forwarding: hold = uploadPaused || !queued.isEmpty
        default: hold = !queued.isEmpty
        }
        if hold { readHeld = true }
        return !hold
    }

    /// What to do once the connection is free.
    enum NextAction: Equatable {
        /// Nothing more to do now.
        case none
        /// Feed these parts to ``received(_:)`` again, in order.
        case replay([HTTPServerRequestPart])
        /// Graceful shutdown: close.
        case close
    }

    /// After a request completed: replay queued parts, or close if quiescing.
    mutating func next() -> NextAction {
        guard case .idle = state else { return .none }
        if !queued.isEmpty {
            let parts = Array(queued)
            queued.removeAll()
            return .replay(parts)
        }
        if quiescing {
            state = .closed
            return .close
        }
        return .none
    }

    /// After replaying: whether a held read should be issued.
    mutating func releaseRead() -> Bool {
        guard readHeld else { return false }
        let free: Bool
        switch state {
        case .waiting: free = false
        case .forwarding: free = !uploadPaused && queued.isEmpty
        default: free = queued.isEmpty
        }
        if free { readHeld = false }
        return free
    }

    /// Graceful shutdown: returns whether to close now.
    mutating func quiesce() -> Bool {
        quiescing = true
        if isIdle {
            state = .closed
            return true
        }
        return false
    }

    /// What was in progress when the client went away.
    enum Abandoned: Equatable {
        case nothing
        /// The planner's work or a connection was awaited: drop the result when it comes.
        case waiting
        /// An upstream exchange was running: abandon it.
        case exchange
    }

    /// The client connection closed or failed.
    mutating func clientGone() -> Abandoned {
        let previous = state
        state = .closed
        queued.removeAll()
        buffered.removeAll()
        switch previous {
        case .waiting: return .waiting
        case .forwarding: return .exchange
        default: return .nothing
        }
    }

    /// The handler is closing the connection (an aborted response, a timeout).
    mutating func close() { _ = clientGone() }
}
