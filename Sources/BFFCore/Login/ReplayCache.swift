import Synchronization

/// Remembers single-use identifiers until they expire, to refuse replays: login `state`s consumed
/// by the callback (even if the browser kept the cookie) and logout-token `jti`s.
public final class ReplayCache: Sendable {
    private let entries = Mutex<[String: UnixTime]>([:])
    /// Most entries kept; expired ones are dropped first, then the oldest.
    public let capacity: Int

    /// Creates an empty cache.
    public init(capacity: Int = 100_000) { self.capacity = capacity }

    /// Records `identifier` until `until`; false if it is already recorded and not expired.
    public func insert(_ identifier: String, until: UnixTime, now: UnixTime) -> Bool {
        entries.withLock { entries in
            if let existing = entries[identifier], existing > now { return false }
            if entries.count >= capacity { entries = entries.filter { $0.value > now } }
            if entries.count >= capacity, let oldest = entries.min(by: { $0.value < $1.value }) {
                entries[oldest.key] = nil
            }
            entries[identifier] = until
            return true
        }
    }
}
