import BFFCore
import Logging
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Synchronization

// The connection pool's lifecycle: start, replacement after an outage, shutdown.
extension PostgresSessionStore {
    static func startPool(configuration: Configuration, logger: Logger, generation: Int) -> RunningPool {
        let tls: PostgresClient.Configuration.TLS =
            switch configuration.tls {
            case .disable: .disable
            case .verifyFull: .require(TLSConfiguration.makeClientConfiguration())
            }
        var clientConfiguration = PostgresClient.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: tls)
        clientConfiguration.options.maximumConnections = configuration.maximumConnections
        clientConfiguration.options.minimumConnections = min(2, configuration.maximumConnections)
        clientConfiguration.options.connectTimeout = .seconds(5)
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        let (started, continuation) = AsyncStream<Void>.makeStream()
        let runner = Task {  // justified: the pool must run before any query; close() cancels and awaits it
            continuation.finish()
            await client.run()
        }
        return RunningPool(client: client, runner: runner, started: started, generation: generation)
    }

    /// Waits until the pool runs, so the first query does not find it idle (PostgresNIO warns).
    func waitUntilRunning() async {
        for await _ in pool.withLock({ $0.started }) {}
        // `run()` marks the pool running in its first, synchronous step; give it that step.
        try? await Task.sleep(for: .milliseconds(2))
    }

    /// While the store runs: once a second, checks that the pool answers. When it has not for three
    /// checks in a row but a direct connection succeeds — the database is back while the pool
    /// still backs off (its back-off grows to a minute during a long outage) — the pool is
    /// replaced, so service resumes within seconds of the database's return. At most one
    /// replacement per 30 s: a database that is merely slow is not made slower by new pools.
    func watchRecovery(every interval: Duration = .seconds(1)) async {
        var failures = 0
        var lastReplacement: ContinuousClock.Instant?
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            let healthy = (try? await withStoreDeadline(interval) { try await self.ping() }) != nil
            failures = healthy ? 0 : failures + 1
            if failures < 3 { continue }
            if let lastReplacement, ContinuousClock.now - lastReplacement < .seconds(30) { continue }
            guard
                (try? await withStoreDeadline(interval) {
                    try await Self.probe(self.configuration, logger: self.logger)
                }) != nil
            else { continue }  // the database itself is down: nothing to do but wait
            await replacePool()
            lastReplacement = .now
            failures = 0
        }
    }

    /// Starts a fresh pool and retires the old one.
    func replacePool() async {
        let (old, new) = pool.withLock { pool -> (RunningPool, RunningPool) in
            let old = pool
            pool = Self.startPool(configuration: configuration, logger: logger, generation: old.generation + 1)
            return (old, pool)
        }
        logger.warning("session database reachable again: connection pool replaced")
        for await _ in new.started {}
        old.runner.cancel()
    }

    // MARK: lifecycle

    /// Watches the pool (see ``watchRecovery(every:)``) and keeps the change subscription (see
    /// ``listenForChanges()``) until graceful shutdown, then closes the pool.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.watchRecovery() }  // justified: structured child task
                group.addTask { await self.listenForChanges() }  // justified: structured child task
            }
        }
        await close()
    }

    /// Closes the connection pool.
    public func close() async {
        let runner = pool.withLock { $0.runner }
        runner.cancel()
        await runner.value
    }
}
