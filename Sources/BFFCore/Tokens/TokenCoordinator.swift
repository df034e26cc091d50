/// Single-flight coordination of token requests as a value-type state machine (STYLE rule 7).
///
/// One machine serves both kinds of token the gateway obtains:
/// - user refreshes, keyed by a hash of the refresh token they spend: one request per refresh
///   token, and its result is kept for a while so a caller that loaded the session before the
///   refresh finished is given that result — a refresh token is never replayed (IdPs such as
///   Glewlwyd revoke the whole token family on replay);
/// - client-credentials tokens, keyed by scopes and resource: one request per key, the result
///   used until shortly before it expires.
///
/// Per key the state is *absent*, *fetching* (with the waiters that joined) or *settled* (a value
/// and when it was obtained). Inputs return actions; the caller performs them (send the request
/// — inside the session's cross-instance lock when ``FetchAction/exclusive`` says so — resume
/// waiters). No I/O, no clocks, no locks here: `now` is passed in, and the owner keeps the machine
/// behind one lock (``TokenFlights``).
public struct TokenCoordinator<Key: Hashable, Value, Waiter> {
    enum Entry {
        case fetching(waiters: [Waiter])
        case settled(Value, at: Int64)
    }

    private var entries: [Key: Entry] = [:]
    /// Whether a settled value may still be used at `now` (by the value and when it was obtained).
    let isUsable: (Value, _ settledAt: Int64, _ now: Int64) -> Bool
    /// Settled values older than this are dropped at the next ``prune(now:)``.
    let retention: Int64

    /// A machine whose settled values are used while `isUsable` says so and kept for `retention` s.
    public init(retention: Int64, isUsable: @escaping (Value, _ settledAt: Int64, _ now: Int64) -> Bool) {
        self.retention = retention
        self.isUsable = isUsable
    }

    /// What the caller of ``request(_:now:waiter:)`` does next.
    public enum RequestAction {
        /// A usable settled value.
        case use(Value)
        /// Nobody is fetching: the caller sends the request and reports ``finish(_:with:now:)``.
        case fetch
        /// A request is in flight: the waiter is resumed when it finishes.
        case wait
    }

    /// A caller needs the value for `key`.
    public mutating func request(_ key: Key, now: Int64, waiter: Waiter) -> RequestAction {
        switch entries[key] {
        case .settled(let value, let at) where isUsable(value, at, now):
            return .use(value)
        case .fetching(var waiters):
            waiters.append(waiter)
            entries[key] = .fetching(waiters: waiters)
            return .wait
        case .settled, nil:
            entries[key] = .fetching(waiters: [])
            return .fetch
        }
    }

    /// The settled value for `key` if usable at `now`; never starts a fetch (the event-loop path).
    public func usableValue(_ key: Key, now: Int64) -> Value? {
        guard case .settled(let value, let at) = entries[key], isUsable(value, at, now) else { return nil }
        return value
    }

    /// The request for `key` finished: the waiters to resume with `result`. A success is settled
    /// (later callers use it); a failure leaves nothing behind (the next caller tries again).
    public mutating func finish(_ key: Key, with result: Result<Value, any Error>, now: Int64) -> [Waiter] {
        guard case .fetching(let waiters) = entries[key] else { return [] }
        switch result {
        case .success(let value): entries[key] = .settled(value, at: now)
        case .failure: entries[key] = nil
        }
        return waiters
    }

    /// Drops settled values older than the retention (fetches in flight stay).
    public mutating func prune(now: Int64) {
        entries = entries.filter { _, entry in
            if case .settled(_, let at) = entry { return now - at < retention }
            return true
        }
    }

    /// Keys with a request in flight (tests).
    public var fetching: Int {
        entries.values.reduce(0) { count, entry in
            if case .fetching = entry { return count + 1 }
            return count
        }
    }
}

/// Whether an access token is fresh enough to send: the one rule every path applies. A token
/// without a known expiry is fresh; otherwise it must be valid for more than `refreshBefore`
/// seconds.
public struct TokenFreshness: Sendable {
    /// Seconds before expiry at which a token is refreshed (`tokens.refreshBeforeExpiry`).
    public let refreshBefore: Int64

    /// A rule refreshing `refreshBefore` seconds before expiry.
    public init(refreshBefore: Int64) { self.refreshBefore = refreshBefore }

    /// Whether a token expiring at `expiresAt` may be sent at `now` without a refresh.
    @inlinable
    public func isFresh(expiresAt: Int64?, now: Int64) -> Bool {
        guard let expiresAt else { return true }
        return expiresAt - now > refreshBefore
    }
}
