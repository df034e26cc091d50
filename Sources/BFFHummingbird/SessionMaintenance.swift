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
    let counters = Mutex((revoked: 0, failed: 0, dropped: 0))

    init(tokens: TokenEndpointClient, logger: Logger) {
        self.tokens = tokens
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(10_000))
    }

    /// Queues refresh tokens for revocation.
    public func enqueue(_ refreshTokens: [String]) {
        for token in refreshTokens {
            if case .dropped = continuation.yield(token) { counters.withLock { $0.dropped += 1 } }
        }
    }

    /// Revocations done, failed and dropped so far.
    public var statistics: (revoked: Int, failed: Int, dropped: Int) { counters.withLock { $0 } }

    /// Revokes queued tokens until graceful shutdown.
    public func run() async throws {
        await withGracefulShutdownHandler {
            for await token in stream {
                do {
                    try await tokens.revoke(token: token, hint: "refresh_token")
                    counters.withLock { $0.revoked += 1 }
                } catch {
                    counters.withLock { $0.failed += 1 }
                    logger.warning("background refresh-token revocation failed", metadata: ["bff.error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            self.continuation.finish()
        }
    }
}

/// Removes expired server-side sessions every `session.cleanupInterval` and, when
/// `tokens.revokeRefreshTokenOnLogout` is on, queues their refresh tokens for revocation.
public struct SessionCleanupService: Service {
    let bff: BFF
    let store: any SessionStore

    /// Creates the service for `bff`'s store.
    public init(bff: BFF, store: any SessionStore) {
        self.bff = bff
        self.store = store
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

    /// One cleanup pass (tests call it directly).
    @discardableResult
    public func cleanOnce() async -> Int {
        do {
            let removed = try await store.removeExpired(now: bff.time.now)
            if bff.configuration.tokens.revokeRefreshTokenOnLogout {
                bff.revoker.enqueue(bff.sessions.refreshTokens(of: removed))
            }
            return removed.count
        } catch {
            bff.logger.warning("session cleanup failed", metadata: ["bff.error": "\(error)"])
            return 0
        }
    }
}
