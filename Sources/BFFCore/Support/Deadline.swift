/// The session store did not answer within its deadline, or failed (SPEC §11.1). Requests that
/// need it get 503 `store-unavailable`; the cookie is kept, and nothing is taken as "logged out".
public struct SessionStoreUnavailable: Error, CustomStringConvertible {
    /// Why: a timeout or the store's own error, without secrets.
    public let reason: String
    /// Creates the error.
    public init(reason: String) { self.reason = reason }
    /// A description safe to log.
    public var description: String { "session store unavailable: \(reason)" }
}

/// Runs `body`, giving up after `limit`: the body is cancelled and ``SessionStoreUnavailable`` is
/// thrown. Any error of the body becomes ``SessionStoreUnavailable`` too.
///
/// Structured: both the body and the timer are child tasks, so the call returns once the body has
/// reacted to its cancellation (store drivers cancel a request that waits for a connection).
public func withStoreDeadline<T: Sendable>(
    _ limit: Duration, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    do {
        return try await withThrowingTaskGroup(of: DeadlineOutcome<T>.self) { group in
            group.addTask { .done(try await body()) }
            group.addTask {
                try await Task.sleep(for: limit)
                return .timedOut
            }
            defer { group.cancelAll() }
            switch try await group.next() {
            case .done(let value): return value
            case .timedOut, nil: throw SessionStoreUnavailable(reason: "no answer within \(limit)")
            }
        }
    } catch let error as SessionStoreUnavailable {
        throw error
    } catch {
        throw SessionStoreUnavailable(reason: String(describing: type(of: error)))
    }
}

private enum DeadlineOutcome<T: Sendable>: Sendable {
    case done(T)
    case timedOut
}
