import Synchronization

/// Remembers the `state` values of completed callbacks until their transactions would have expired,
/// so a replayed callback (same cookie, same state) is refused even if the browser kept the cookie.
public final class ConsumedStateCache: Sendable {
    private let entries = Mutex<[String: UnixTime]>([:])
    /// Most entries kept; past that the oldest are dropped (they are near expiry anyway).
    public let capacity: Int

    /// Creates an empty cache.
    public init(capacity: Int = 100_000) { self.capacity = capacity }

    /// Marks `state` used; returns false if it already was.
    public func consume(_ state: String, expiresAt: UnixTime, now: UnixTime) -> Bool {
        entries.withLock { entries in
            if entries.count >= capacity { entries = entries.filter { $0.value > now } }
            if entries.count >= capacity, let oldest = entries.min(by: { $0.value < $1.value }) {
                entries[oldest.key] = nil
            }
            if let existing = entries[state], existing > now { return false }
            entries[state] = expiresAt
            return true
        }
    }
}
