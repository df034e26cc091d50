import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One keep-alive connection to an upstream.
final class UpstreamConnection: Sendable {
    let channel: any Channel
    /// The handler; only touched on `channel.eventLoop`.
    let handler: NIOLoopBound<UpstreamConnectionHandler>
    private let idleSince = Mutex<ContinuousClock.Instant>(.now)

    init(channel: any Channel, handler: NIOLoopBound<UpstreamConnectionHandler>) {
        self.channel = channel
        self.handler = handler
    }

    var idleFor: Duration { ContinuousClock.now - idleSince.withLock { $0 } }
    func markIdle() { idleSince.withLock { $0 = .now } }
}

/// The one owner of a leased connection: whatever ends the exchange (the response's end, an
/// error, a cancelled task, a client that went away) calls ``end(reusable:)``, once; an owner
/// dropped without that (a response Hummingbird never wrote because the client was gone) closes
/// the connection when it goes away. So a lease can never outlive its exchange.
final class UpstreamLease: Sendable {
    let connection: UpstreamConnection
    let pool: UpstreamConnectionPool
    private let ended = Atomic<Bool>(false)

    init(connection: UpstreamConnection, pool: UpstreamConnectionPool) {
        self.connection = connection
        self.pool = pool
    }

    /// Gives the connection back: kept for reuse only if `reusable` and the pool verifies it is clean.
    func end(reusable: Bool) {
        guard !ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        pool.release(connection, reusable: reusable)
    }

    deinit {
        if !ended.load(ordering: .acquiring) { pool.release(connection, reusable: false) }
    }
}

/// Keep-alive connections to one upstream (`host:port`) from one event loop, so a request and its
/// upstream connection share a thread. Bounded: at most ``maximumConnections`` at once; further
/// requests wait in a queue for a returned connection, at most ``waitTimeout`` (then
/// ``UpstreamError/busy``).
final class UpstreamConnectionPool: Sendable {
    private enum WaitOutcome {
        case handedOver(UpstreamConnection)
        case slotFree, busy, closed
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<WaitOutcome, Never>
    }

    private struct State {
        var idle: [UpstreamConnection] = []
        var leased = 0
        var connecting = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
        /// When a connection last came back (or the pool last had room).
        var lastTurnover = NIODeadline.now()
    }

    let host: String
    let port: Int
    let eventLoop: any EventLoop
    let maximumConnections: Int
    let connectTimeout: TimeAmount
    let idleTimeout: Duration
    let waitTimeout: TimeAmount
    /// Where new connections are registered (so a shutdown can abort them).
    let connections: OpenConnections?
    private let state = Mutex(State())

    init(
        host: String, port: Int, eventLoop: any EventLoop, maximumConnections: Int, connectTimeout: TimeAmount,
        idleTimeout: Duration, waitTimeout: TimeAmount, connections: OpenConnections? = nil
    ) {
        self.connections = connections
        self.host = host
        self.port = port
        self.eventLoop = eventLoop
        self.maximumConnections = maximumConnections
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.waitTimeout = waitTimeout
    }

    /// A connection for one request: an idle one, a new one, or (at the limit) the next one returned
    /// within ``waitTimeout``. `fresh` skips idle connections (used for the one retry after a stale
    /// connection).
    func lease(fresh: Bool = false, waitingUntil deadline: NIODeadline? = nil) async throws -> UpstreamLease {
        enum Decision {
            case reuse(UpstreamConnection)
            case connect, wait, closed
        }
        let decision: Decision = state.withLock { state in
            if state.closed { return .closed }
            if !fresh, let connection = Self.takeIdle(&state, idleTimeout: idleTimeout) {
                state.lastTurnover = .now()
                return .reuse(connection)
            }
            if state.leased + state.connecting < maximumConnections {
                state.connecting += 1
                state.lastTurnover = .now()
                return .connect
            }
            return .wait
        }
        switch decision {
        case .reuse(let connection): return UpstreamLease(connection: connection, pool: self)
        case .closed: throw UpstreamError.unavailable
        case .connect:
            do {
                let connection = try await connect()
                state.withLock { state in
                    state.connecting -= 1
                    state.leased += 1
                }
                return UpstreamLease(connection: connection, pool: self)
            } catch {
                let waiter: Waiter? = state.withLock { state in
                    state.connecting -= 1
                    return state.waiters.isEmpty ? nil : state.waiters.removeFirst()
                }
                waiter?.continuation.resume(returning: .slotFree)  // let a waiter try its own connection
                throw UpstreamError.unavailable
            }
        case .wait:
            // One deadline for the whole wait, however often a freed slot is lost to a newcomer.
            let deadline = deadline ?? .now() + waitTimeout
            switch await waitForConnection(until: deadline) {
            case .handedOver(let connection): return UpstreamLease(connection: connection, pool: self)
            case .slotFree: return try await lease(fresh: true, waitingUntil: deadline)
            case .busy: throw UpstreamError.busy
            case .closed: throw UpstreamError.unavailable
            }
        }
    }

    private func waitForConnection(until deadline: NIODeadline) async -> WaitOutcome {
        await withCheckedContinuation { continuation in
            let id = state.withLock { state in
                let id = state.nextWaiterID
                state.nextWaiterID &+= 1
                state.waiters.append(Waiter(id: id, continuation: continuation))
                return id
            }
            eventLoop.scheduleTask(deadline: deadline) { [self] in
                let waiter: Waiter? = state.withLock { state in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                waiter?.continuation.resume(returning: .busy)
            }
        }
    }

    /// Puts `connection` among the idle ones, as if returned (tests drive pools with
    /// `EmbeddedChannel` connections).
    func adoptIdle(_ connection: UpstreamConnection) {
        state.withLock { $0.idle.append(connection) }
    }

    /// An idle keep-alive connection if one is at hand right now; nil otherwise (never connects
    /// or waits). For the event-loop fast path.
    func leaseIdle() -> UpstreamLease? {
        let connection: UpstreamConnection? = state.withLock { state in
            state.closed ? nil : Self.takeIdle(&state, idleTimeout: idleTimeout)
        }
        return connection.map { UpstreamLease(connection: $0, pool: self) }
    }

    private static func takeIdle(_ state: inout State, idleTimeout: Duration) -> UpstreamConnection? {
        while let connection = state.idle.popLast() {
            if connection.channel.isActive && connection.idleFor < idleTimeout {
                state.leased += 1
                return connection
            }
            connection.channel.close(promise: nil)
        }
        return nil
    }

    /// Returns a connection after its exchange (through ``UpstreamLease``). It is kept only if
    /// `reusable` and, checked on its event loop, in a verified clean state (response complete,
    /// reading on, nothing held back or unexpected); otherwise it is closed.
    fileprivate func release(_ connection: UpstreamConnection, reusable: Bool) {
        if connection.channel.eventLoop.inEventLoop {
            releaseOnLoop(connection, reusable: reusable)
        } else {
            connection.channel.eventLoop.execute { self.releaseOnLoop(connection, reusable: reusable) }
        }
    }

    private func releaseOnLoop(_ connection: UpstreamConnection, reusable: Bool) {
        let usable = reusable && connection.handler.value.isReusable
        if usable { connection.markIdle() }
        let waiter: Waiter? = state.withLock { state in
            state.lastTurnover = .now()
            if usable, !state.closed, !state.waiters.isEmpty {
                return state.waiters.removeFirst()  // stays leased: handed straight to the waiter
            }
            state.leased -= 1
            if usable && !state.closed {
                state.idle.append(connection)
            }
            if !state.waiters.isEmpty {
                // A slot is free: let the first waiter connect anew.
                return state.waiters.removeFirst()
            }
            return nil
        }
        if !usable { connection.channel.close(promise: nil) }
        waiter?.continuation.resume(returning: usable ? .handedOver(connection) : .slotFree)
    }

    /// Closes idle connections and refuses new leases.
    func close() {
        let (idle, waiters) = state.withLock { state -> ([UpstreamConnection], [Waiter]) in
            state.closed = true
            defer {
                state.idle.removeAll()
                state.waiters.removeAll()
            }
            return (state.idle, state.waiters)
        }
        for connection in idle { connection.channel.close(promise: nil) }
        for waiter in waiters { waiter.continuation.resume(returning: .closed) }
    }

    /// Idle connections held (tests).
    var idleCount: Int { state.withLock { $0.idle.count } }
    /// Idle, leased and waiting, read at once.
    var counts: (idle: Int, leased: Int, waiting: Int) {
        state.withLock { ($0.idle.count, $0.leased, $0.waiters.count) }
    }
    /// Connections in use (tests).
    var leasedCount: Int { state.withLock { $0.leased } }

    /// Every connection is in use and none came back for ``waitTimeout``: new requests can only
    /// wait and then fail (`/readyz` reports it).
    var isSaturated: Bool {
        state.withLock { state in
            state.leased + state.connecting >= maximumConnections && .now() - state.lastTurnover >= waitTimeout
        }
    }

    private func connect() async throws -> UpstreamConnection {
        let channel = try await ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // No second validation pass over outgoing headers: the normal path builds them
                    // from swift-http-types fields (legal by construction), the event-loop fast path
                    // from fields llhttp parsed, re-checked for control characters before sending,
                    // and both add only the gateway's own values and IdP tokens checked on receipt.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(UpstreamConnectionHandler())
                }
            }
            .connect(host: host, port: port).get()
        connections?.add(channel)
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(
                try channel.pipeline.syncOperations.handler(type: UpstreamConnectionHandler.self),
                eventLoop: channel.eventLoop)
        }.get()
        return UpstreamConnection(channel: channel, handler: handler)
    }
}
