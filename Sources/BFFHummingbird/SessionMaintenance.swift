import BFFCore
import BFFOIDC
import Logging
import ServiceLifecycle
import Synchronization

/// Revokes refresh tokens at the IdP in the background, so a caller (a back-channel logout the IdP
/// is waiting on, or the expiry cleanup) never waits on the IdP. Bounded: when more than 10,000
/// tokens wait, the oldest are dropped (and counted).
public final class RefreshTokenRevoker: Service {
    let tokens: TokenEndpointClient
    let logger: Logger
    let stream: AsyncStream<String>
    let continuation: AsyncStream<String>.Continuation
    let counters = Mutex((revoked: 0, failed: 0, dropped: 0, skipped: 0))
    /// Tokens waiting to be revoked.
    let queued = Mutex(0)

    init(tokens: TokenEndpointClient, logger: Logger) {
        self.tokens = tokens
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(10_000))
    }

    /// Queues refresh tokens for revocation.
    public func enqueue(_ refreshTokens: [String]) {
        for token in refreshTokens {
            switch continuation.yield(token) {
            case .enqueued: queued.withLock { $0 += 1 }
            case .dropped: counters.withLock { $0.dropped += 1 }  // the oldest made room: as many wait
            case .terminated: break
            @unknown default: break
            }
        }
    }

    /// Revocations done, failed and dropped so far, and tokens skipped because the IdP has no
    /// revocation endpoint.
    public var statistics: (revoked: Int, failed: Int, dropped: Int, skipped: Int) { counters.withLock { $0 } }

    /// Refresh tokens waiting to be revoked (the queue's depth).
    public var queueDepth: Int { queued.withLock { $0 } }

    /// Revokes queued tokens until graceful shutdown.
    public func run() async throws {
        await withGracefulShutdownHandler {
            for await token in stream { await revoke(token) }
        } onGracefulShutdown: {
            self.continuation.finish()
        }
    }

    /// Takes no more tokens: ``run()`` revokes what is queued and returns (a BFF a configuration
    /// reload retired, once its last requests are done).
    public func finish() {
        continuation.finish()
    }

    /// Revokes what is queued now and returns (one-shot commands such as `bff sessions revoke`,
    /// which do not run the revoker as a service). The revoker takes nothing more afterwards.
    public func revokeQueued() async {
        continuation.finish()
        for await token in stream { await revoke(token) }
    }

    private func revoke(_ token: String) async {
        queued.withLock { $0 = max(0, $0 - 1) }
        // IdPs without a revocation endpoint (LemonLDAP::NG): the gateway has already dropped the
        // token with the session; there is nothing to call.
        guard await tokens.provider.revocationEndpoint() != nil else {
            counters.withLock { $0.skipped += 1 }
            return
        }
        do {
            try await tokens.revoke(token: token, hint: "refresh_token")
            counters.withLock { $0.revoked += 1 }
        } catch {
            counters.withLock { $0.failed += 1 }
            logger.warning("refresh-token revocation failed", metadata: ["bff.error": "\(error)"])
        }
    }
}

/// Every `session.cleanupInterval`: removes expired server-side sessions (queuing their refresh
/// tokens for revocation when `tokens.revokeRefreshTokenOnLogout` is on) and drops revocation
/// records older than the absolute session lifetime (cookie mode).
public struct SessionCleanupService: Service {
    let bff: BFF
    let store: (any SessionStore)?
    /// Every BFF sharing the store, asked at each pass (a reload may change them): each queues
    /// the refresh tokens of its own expired sessions (only it can open them) for revocation at
    /// its own IdP.
    let frontends: @Sendable () -> [BFF]

    /// Creates the service for `bff` and its server-side store, if any.
    public init(bff: BFF, store: (any SessionStore)?) {
        self.init(bff: bff, store: store, frontends: { [bff] })
    }

    /// Creates the service for the store the BFFs `frontends` returns share (`bff` gives the
    /// interval, clock and metrics).
    public init(bff: BFF, store: (any SessionStore)?, frontends: @escaping @Sendable () -> [BFF]) {
        self.bff = bff
        self.store = store
        self.frontends = frontends
    }

    /// Cleans up until graceful shutdown.
    public func run() async throws {
        let interval = bff.configuration.session.cleanupInterval
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            await cleanOnce()
        }
    }

    /// One cleanup pass (tests call it directly); returns the number of sessions removed.
    @discardableResult
    public func cleanOnce() async -> Int {
        let now = bff.time.now
        let frontends = self.frontends()
        for frontend in frontends { frontend.revocations.prune(now: now) }
        if let feed = bff.revocationFeed {
            do {
                try await feed.pruneRevocations(before: now - bff.revocations.retention)
            } catch {
                bff.logger.warning("pruning shared revocation records failed", metadata: ["bff.error": "\(error)"])
            }
        }
        guard let store else { return 0 }
        do {
            let removed = try await store.removeExpired(now: now)
            for frontend in frontends {
                // Counted for the frontend each session belonged to (one store serves them all).
                frontend.metrics.sessionsEnded(.expired, count: removed.count(where: { frontend.sessions.owns($0) }))
                if frontend.configuration.tokens.revokeRefreshTokenOnLogout {
                    frontend.revoker.enqueue(frontend.sessions.refreshTokens(of: removed))
                }
            }
            return removed.count
        } catch {
            bff.logger.warning("session cleanup failed", metadata: ["bff.error": "\(error)"])
            return 0
        }
    }
}

extension BFF {
    /// Hands revocation records made here to the feed (the durable file or the shared table); what
    /// cannot be written stays queued for the next try. Logout and back-channel logout call it
    /// before answering, so a record is stored before the browser hears the session ended.
    public func publishPendingRevocations() async {
        guard let feed = revocationFeed else { return }
        let revocations = self.revocations
        let logger = self.logger
        let deadline = configuration.session.storeTimeout
        _ = try? await revocationPublishing.withLock(0) {
            let pending = revocations.takeUnpublished()
            for (index, record) in pending.enumerated() {
                do {
                    try await withStoreDeadline(deadline) {
                        try await feed.publishRevocation(entry: record.entry, at: record.at)
                    }
                } catch {
                    // Applied in memory already; stored by the next sync (every 250 ms) or logout.
                    revocations.requeue(Array(pending[index...]))
                    logger.error(
                        "storing revocation records failed; they apply in memory and will be retried",
                        metadata: ["bff.error": "\(error)"])
                    return
                }
            }
        }
    }

    /// Reads every stored revocation record into the list (before serving: after a restart, a
    /// cookie ended before it must stay anonymous from the first request on). Returns the cursor
    /// for ``RevocationSyncService``.
    @discardableResult
    public func restoreRevocations() async throws -> Int64 {
        guard let feed = revocationFeed else { return 0 }
        var cursor: Int64 = 0
        while true {
            let (entries, next) = try await feed.revocations(after: cursor)
            for (entry, at) in entries { revocations.apply(entry: entry, at: at) }
            if entries.isEmpty || next == cursor { return cursor }
            cursor = next
        }
    }
}

/// Keeps this instance's revocation list in step with the other instances' (cookie mode behind a
/// load balancer): publishes local records and applies everyone's, every `interval`. A logout on
/// one instance is therefore honoured by all of them within `interval` plus one database round trip.
public struct RevocationSyncService: Service {
    let bff: BFF
    let feed: any SharedRevocationFeed
    let interval: Duration

    /// The bound on how long another instance's revocation takes to apply here, in normal operation.
    public static let defaultInterval: Duration = .milliseconds(250)

    /// Creates the service for `bff`'s feed.
    public init(bff: BFF, feed: any SharedRevocationFeed, interval: Duration = RevocationSyncService.defaultInterval) {
        self.bff = bff
        self.feed = feed
        self.interval = interval
    }

    /// Synchronises until graceful shutdown, then publishes what is left.
    public func run() async throws {
        var cursor: Int64 = 0
        while !Task.isShuttingDownGracefully {
            cursor = await syncOnce(after: cursor)
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
        }
        _ = await syncOnce(after: cursor)
    }

    /// Publishes local records, applies new shared ones; returns the next cursor.
    public func syncOnce(after cursor: Int64) async -> Int64 {
        await bff.publishPendingRevocations()
        do {
            let (entries, next) = try await feed.revocations(after: cursor)
            for (entry, at) in entries { bff.revocations.apply(entry: entry, at: at) }
            return next
        } catch {
            bff.logger.warning("reading shared revocation records failed", metadata: ["bff.error": "\(error)"])
            return cursor
        }
    }
}
