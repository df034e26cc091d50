import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The gateway's own HTTP/1.1 forwarder for `http://` upstreams: keep-alive pools per upstream per
/// event loop, streaming bodies both ways with back-pressure, one retry for idempotent requests
/// that met a connection the upstream had closed. `https://` upstreams go to `tlsFallback`.
public final class NIOUpstream: UpstreamTransport, Service {
    /// Settings.
    public struct Configuration: Sendable {
        /// Connections per upstream per event loop, 128 by default.
        public var maximumConnectionsPerLoop: Int
        /// TCP connect timeout, 5 s by default.
        public var connectTimeout: Duration
        /// Idle connections older than this are not reused, 50 s by default (below common upstream keep-alive timeouts).
        public var idleTimeout: Duration
        /// How long a request waits for a connection when every one is in use, 5 s by default; then
        /// it fails with ``UpstreamError/busy`` (503 `upstream-busy`).
        public var waitTimeout: Duration

        /// Creates settings with the defaults.
        public init(
            maximumConnectionsPerLoop: Int = 128, connectTimeout: Duration = .seconds(5),
            idleTimeout: Duration = .seconds(50), waitTimeout: Duration = .seconds(5)
        ) {
            self.maximumConnectionsPerLoop = maximumConnectionsPerLoop
            self.connectTimeout = connectTimeout
            self.idleTimeout = idleTimeout
            self.waitTimeout = waitTimeout
        }
    }

    let configuration: Configuration
    let group: any EventLoopGroup
    let tlsFallback: (any UpstreamTransport)?
    /// Requests sent through ``exchangeIfIdle(method:url:headers:timeout:eventLoop:consumer:)``.
    let fastExchanges = Atomic<Int>(0)

    /// Number of requests sent on the event-loop fast path (tests, diagnostics).
    public var fastExchangeCount: Int { fastExchanges.load(ordering: .relaxed) }
    private let pools = Mutex<[PoolKey: UpstreamConnectionPool]>([:])
    /// Every upstream connection, idle or in use (``abortAll()``).
    let connections = OpenConnections()

    struct PoolKey: Hashable {
        let host: String
        let port: Int
        let loop: ObjectIdentifier
    }

    /// Creates a forwarder on `group` (the server's event loops); `tlsFallback` handles https.
    public init(
        configuration: Configuration = .init(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        tlsFallback: (any UpstreamTransport)? = nil
    ) {
        self.configuration = configuration
        self.group = group
        self.tlsFallback = tlsFallback
    }

    /// Runs until graceful shutdown, then closes every pooled connection.
    public func run() async throws {
        try? await gracefulShutdown()
        shutdown()
    }

    /// Closes every upstream connection, in use or not: exchanges still running fail at once (a
    /// shutdown past its grace period).
    public func abortAll() {
        shutdown()
        connections.closeAll()
    }

    /// Closes every pool.
    public func shutdown() {
        let all = pools.withLock { pools -> [UpstreamConnectionPool] in
            defer { pools.removeAll() }
            return Array(pools.values)
        }
        for pool in all { pool.close() }
    }

    /// Connections across all pools.
    public struct Statistics: Sendable, Equatable {
        /// Pooled idle connections.
        public var idle: Int
        /// Connections in use.
        public var leased: Int
        /// Number of (upstream, event loop) pools.
        public var pools: Int
    }

    /// The `host:port` of every pool whose connections are all in use with none returned for the
    /// wait timeout (`/readyz` is 503 while any is).
    public var saturatedUpstreams: [String] {
        let all = pools.withLock { Array($0.values) }
        return all.filter(\.isSaturated).map { "\($0.host):\($0.port)" }
    }

    /// Connection counts of one upstream (`host:port`), over its event loops' pools.
    public struct UpstreamStatistics: Sendable, Equatable {
        /// Pooled idle connections.
        public var idle: Int
        /// Connections in use.
        public var leased: Int
        /// Calls waiting for a connection.
        public var waiting: Int
    }

    /// Connection counts per upstream, keyed by `host:port` (metrics).
    public var statisticsByUpstream: [String: UpstreamStatistics] {
        let all = pools.withLock { Array($0.values) }
        var result: [String: UpstreamStatistics] = [:]
        for pool in all {
            let counts = pool.counts
            result["\(pool.host):\(pool.port)", default: .init(idle: 0, leased: 0, waiting: 0)].idle += counts.idle
            result["\(pool.host):\(pool.port)", default: .init(idle: 0, leased: 0, waiting: 0)].leased += counts.leased
            result["\(pool.host):\(pool.port)", default: .init(idle: 0, leased: 0, waiting: 0)].waiting +=
                counts.waiting
        }
        return result
    }

    /// Current connection counts (tests, diagnostics).
    public var statistics: Statistics {
        let all = pools.withLock { Array($0.values) }
        return Statistics(
            idle: all.reduce(0) { $0 + $1.idleCount }, leased: all.reduce(0) { $0 + $1.leasedCount }, pools: all.count)
    }

    func pool(host: String, port: Int, eventLoop: any EventLoop) -> UpstreamConnectionPool {
        let key = PoolKey(host: host, port: port, loop: ObjectIdentifier(eventLoop as AnyObject))
        return pools.withLock { pools in
            if let pool = pools[key] { return pool }
            let pool = UpstreamConnectionPool(
                host: host, port: port, eventLoop: eventLoop,
                maximumConnections: configuration.maximumConnectionsPerLoop,
                connectTimeout: TimeAmount(configuration.connectTimeout), idleTimeout: configuration.idleTimeout,
                waitTimeout: TimeAmount(configuration.waitTimeout), connections: connections)
            pools[key] = pool
            return pool
        }
    }
}
