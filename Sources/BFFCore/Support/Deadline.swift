import Synchronization

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

/// Runs `body`, giving up after `limit` (or when the caller is cancelled): the caller gets
/// ``SessionStoreUnavailable`` at once and `body` is cancelled — or, with `cancelsBody: false`,
/// left to finish on its own (a warm-up whose result is cached for the next caller). Any error
/// of the body becomes ``SessionStoreUnavailable`` too.
///
/// The caller does not wait for a cancelled body to return: a store driver that ignores
/// cancellation while it waits for a connection (PostgresNIO's pool during an outage) would
/// otherwise hold the request — and, through it, the server's shutdown — until its own timeouts.
public func withStoreDeadline<T: Sendable>(
    _ limit: Duration, cancelsBody: Bool = true, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>(cancelsBody: cancelsBody)
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            let work = Task {  // justified: the body must be abandonable (see above); cancelled when the race ends
                do {
                    race.finish(.success(try await body()))
                } catch {
                    race.finish(.failure(SessionStoreUnavailable(reason: String(describing: type(of: error)))))
                }
            }
            let timer = Task {  // justified: the race's timer; cancelled as soon as the body answers
                try? await Task.sleep(for: limit)
                race.finish(.failure(SessionStoreUnavailable(reason: "no answer within \(limit)")))
            }
            race.attach(work: work, timer: timer)
        }
    } onCancel: {
        race.finish(.failure(SessionStoreUnavailable(reason: "cancelled")))
    }
}

/// One deadline race: the first of body, timer and cancellation resumes the caller; the others
/// are then cancelled.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var result: Result<T, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }
    private let state = Mutex(State())
    let cancelsBody: Bool

    init(cancelsBody: Bool) { self.cancelsBody = cancelsBody }

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { state in
            if let result = state.result { return result }  // cancelled before it started
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func attach(work: Task<Void, Never>, timer: Task<Void, Never>) {
        let finished = state.withLock { state -> Bool in
            state.work = work
            state.timer = timer
            return state.result != nil
        }
        if finished {
            if cancelsBody { work.cancel() }
            timer.cancel()
        }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, work, timer): (CheckedContinuation<T, any Error>?, Task<Void, Never>?, Task<Void, Never>?) =
            state.withLock { state in
                guard state.result == nil else { return (nil, nil, nil) }
                state.result = result
                defer { state.continuation = nil }
                return (state.continuation, state.work, state.timer)
            }
        continuation?.resume(with: result)
        if cancelsBody { work?.cancel() }
        timer?.cancel()
    }
}
