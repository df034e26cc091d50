import Synchronization

/// Runs a ``TokenCoordinator`` for real callers: the machine behind one lock, waiters as
/// continuations, the fetch in the first caller's own task (no unstructured tasks).
public final class TokenFlights<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private typealias Machine = TokenCoordinator<Key, Value, CheckedContinuation<Value?, any Error>>
    // `Machine` holds a non-Sendable closure and continuations; it is only touched under the lock.
    private let machine: Mutex<Machine>
    let time: any TimeSource

    /// Flights whose results are used while `isUsable` says so and pruned after `retention` s.
    public init(
        retention: Int64, time: any TimeSource,
        isUsable: @escaping @Sendable (Value, _ settledAt: Int64, _ now: Int64) -> Bool
    ) {
        self.machine = Mutex(Machine(retention: retention, isUsable: isUsable))
        self.time = time
    }

    /// The usable settled value for `key`, if any, without waiting (the event-loop path).
    public func usableValue(_ key: Key) -> Value? {
        let now = time.now
        return machine.withLock { $0.usableValue(key, now: now) }
    }

    /// Requests in flight (tests).
    public var fetching: Int { machine.withLock { $0.fetching } }

    /// The value for `key`: a usable settled one, the result of the fetch in flight, or the result
    /// of `fetch`, run now by this caller.
    public func value(_ key: Key, fetch: () async throws -> Value) async throws -> Value {
        // One locked step decides and, for a waiter, registers its continuation: a fetch cannot
        // finish between the two. nil tells this caller to fetch.
        let ready: Value? = try await withCheckedThrowingContinuation { continuation in
            let now = time.now
            switch machine.withLock({ $0.request(key, now: now, waiter: continuation) }) {
            case .use(let value): continuation.resume(returning: value)
            case .fetch: continuation.resume(returning: nil)
            case .wait: break  // resumed by the fetching caller
            }
        }
        if let ready { return ready }
        let result: Result<Value, any Error>
        do {
            result = .success(try await fetch())
        } catch {
            result = .failure(error)
        }
        let now = time.now
        let waiters = machine.withLock { machine in
            defer { machine.prune(now: now) }
            return machine.finish(key, with: result, now: now)
        }
        for waiter in waiters { waiter.resume(with: result.map { Optional($0) }) }
        return try result.get()
    }
}
