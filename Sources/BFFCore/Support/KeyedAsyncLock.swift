import Synchronization

/// Serialises async sections per key within the process, first come first served. Used around
/// every token refresh of a server-side session, so two refreshes of one session (for its own
/// access token and for a resource) can never spend the same refresh token.
public final class KeyedAsyncLock<Key: Hashable & Sendable>: Sendable {
    /// Per held key, the sections waiting for it.
    private let held = Mutex<[Key: [CheckedContinuation<Void, Never>]]>([:])

    /// An idle lock.
    public init() {}

    /// Runs `body` once no other section for `key` runs.
    public func withLock<T: Sendable>(_ key: Key, _ body: () async throws -> T) async throws -> T {
        await acquire(key)
        do {
            let result = try await body()
            release(key)
            return result
        } catch {
            release(key)
            throw error
        }
    }

    private func acquire(_ key: Key) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = held.withLock { held -> Bool in
                guard held[key] != nil else {
                    held[key] = []
                    return true
                }
                held[key, default: []].append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    private func release(_ key: Key) {
        let next = held.withLock { held -> CheckedContinuation<Void, Never>? in
            guard var waiting = held[key], !waiting.isEmpty else {
                held[key] = nil
                return nil
            }
            let next = waiting.removeFirst()
            held[key] = waiting
            return next
        }
        next?.resume()
    }

    /// Keys held or waited for (tests).
    var heldKeys: Int { held.withLock { $0.count } }
}
