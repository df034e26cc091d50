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

/// Keep-alive connections to one upstream (`host:port`) from one event loop, so a request and its
/// upstream connection share a thread. Bounded: at most ``maximumConnections`` at once; further
/// requests wait in a queue for a returned connection.
final class UpstreamConnectionPool: Sendable {
    private struct State {
        var idle: [UpstreamConnection] = []
        var leased = 0
        var connecting = 0
        var waiters: [CheckedContinuation<UpstreamConnection?, Never>] = []
        var closed = false
    }

    let host: String
    let port: Int
    let eventLoop: any EventLoop
    let maximumConnections: Int
    let connectTimeout: TimeAmount
    let idleTimeout: Duration
    private let state = Mutex(State())

    init(
        host: String, port: Int, eventLoop: any EventLoop, maximumConnections: Int, connectTimeout: TimeAmount,
        idleTimeout: Duration
    ) {
        self.host = host
        self.port = port
        self.eventLoop = eventLoop
        self.maximumConnections = maximumConnections
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    /// A connection for one request: an idle one, a new one, or (at the limit) the next one returned.
    /// `fresh` skips idle connections (used for the one retry after a stale connection).
    func lease(fresh: Bool = false) async throws -> UpstreamConnection {
        enum Decision {
            case reuse(UpstreamConnection)
            case connect, wait, closed
        }
        let decision: Decision = state.withLock { state in
            if state.closed { return .closed }
            if !fresh {
                while let connection = state.idle.popLast() {
                    if connection.channel.isActive && connection.idleFor < idleTimeout {
                        state.leased += 1
                        return .reuse(connection)
                    }
                    connection.channel.close(promise: nil)
                }
            }
            if state.leased + state.connecting < maximumConnections {
                state.connecting += 1
                return .connect
            }
            return .wait
        }
        switch decision {
        case .reuse(let connection): return connection
        case .closed: throw UpstreamError.unavailable
        case .connect:
            do {
                let connection = try await connect()
                state.withLock { state in
                    state.connecting -= 1
                    state.leased += 1
                }
                return connection
            } catch {
                let waiter: CheckedContinuation<UpstreamConnection?, Never>? = state.withLock { state in
                    state.connecting -= 1
                    return state.waiters.isEmpty ? nil : state.waiters.removeFirst()
                }
                waiter?.resume(returning: nil)  // let a waiter try its own connection
                throw UpstreamError.unavailable
            }
        case .wait:
            let handedOver = await withCheckedContinuation { continuation in
                state.withLock { $0.waiters.append(continuation) }
            }
            if let handedOver { return handedOver }
            return try await lease(fresh: true)
        }
    }

    /// An idle keep-alive connection if one is at hand right now; nil otherwise (never connects
    /// or waits). For the event-loop fast path.
    func leaseIdle() -> UpstreamConnection? {
        state.withLock { state in
            if state.closed { return nil }
            while let connection = state.idle.popLast() {
                if connection.channel.isActive && connection.idleFor < idleTimeout {
                    state.leased += 1
                    return connection
                }
                connection.channel.close(promise: nil)
            }
            return nil
        }
    }

    /// Returns a connection after a complete exchange; it is reused if `reusable`.
    func release(_ connection: UpstreamConnection, reusable: Bool) {
        let usable = reusable && connection.channel.isActive
        if usable { connection.markIdle() }
        let waiter: CheckedContinuation<UpstreamConnection?, Never>? = state.withLock { state in
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
        if let waiter {
            if usable {
                waiter.resume(returning: connection)
            } else {
                waiter.resume(returning: nil)
            }
        }
    }

    /// Closes idle connections and refuses new leases.
    func close() {
        let (idle, waiters) = state.withLock {
            state -> ([UpstreamConnection], [CheckedContinuation<UpstreamConnection?, Never>]) in
            state.closed = true
            defer {
                state.idle.removeAll()
                state.waiters.removeAll()
            }
            return (state.idle, state.waiters)
        }
        for connection in idle { connection.channel.close(promise: nil) }
        for waiter in waiters { waiter.resume(returning: nil) }
    }

    /// Idle connections held (tests).
    var idleCount: Int { state.withLock { $0.idle.count } }
    /// Connections in use (tests).
    var leasedCount: Int { state.withLock { $0.leased } }

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
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(
                try channel.pipeline.syncOperations.handler(type: UpstreamConnectionHandler.self),
                eventLoop: channel.eventLoop)
        }.get()
        return UpstreamConnection(channel: channel, handler: handler)
    }
}
