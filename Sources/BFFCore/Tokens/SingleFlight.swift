/// Runs at most one operation per key at a time; callers that arrive while it runs wait for its
/// result instead of starting their own (SPEC §8: one refresh per session, one client-credentials
/// request per scope set).
///
/// The state per key is explicit: absent (idle) or `running` with the continuations of the
/// waiters. The first caller runs the operation in its own task — no unstructured tasks — and
/// hands the outcome to every waiter.
public actor SingleFlight<Key: Hashable & Sendable, Value: Sendable> {
    private var running: [Key: [CheckedContinuation<Value, any Error>]] = [:]

    /// Creates an idle coordinator.
    public init() {}

    /// Number of keys with an operation in flight (tests).
    public var inFlight: Int { running.count }

    /// Runs `operation` for `key`, or joins the one already running.
    public func run(_ key: Key, _ operation: @Sendable () async throws -> Value) async throws -> Value {
        if running[key] != nil {
            return try await withCheckedThrowingContinuation { continuation in
                running[key, default: []].append(continuation)
            }
        }
        running[key] = []
        let outcome: Result<Value, any Error>
        do {
            outcome = .success(try await operation())
        } catch {
            outcome = .failure(error)
        }
        let waiters = running.removeValue(forKey: key) ?? []
        for waiter in waiters { waiter.resume(with: outcome) }
        return try outcome.get()
    }
}
