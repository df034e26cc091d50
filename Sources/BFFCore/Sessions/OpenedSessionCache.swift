import Crypto
import Synchronization

/// Sessions already opened, keyed by the exact cookie value that named them, so a request
/// carrying a cookie seen before skips the base64 decoding, the two AES-GCM opens and the
/// decoding of the session.
///
/// Nothing is trusted from the cache alone:
/// - server-side: the store is still read on every request, and the cached session is used only
///   when the stored ciphertext is *the same* as the one it was opened from (a changed, ended or
///   expired record is opened again or is gone); the cached keys were derived from a ticket that
///   opened with the key ring, and a key ring does not change while the process runs;
/// - cookie mode: the revocation list and the expiry are checked on every request, as without the
///   cache; the key is the whole sealed value, which authenticated when it was first opened.
///
/// Bounded: when full, it is emptied (the next requests open their sessions again).
final class OpenedSessionCache: Sendable {
    /// Entries are objects: a hit is one retain, not one per field of the session (hits come
    /// from every event loop at once).
    final class ServerEntry: Sendable {
        let storeKey: [UInt8]
        let sessionKey: SymmetricKey
        let sealed: [UInt8]
        let session: Session

        init(storeKey: [UInt8], sessionKey: SymmetricKey, sealed: [UInt8], session: Session) {
            self.storeKey = storeKey
            self.sessionKey = sessionKey
            self.sealed = sealed
            self.session = session
        }
    }

    final class CookieEntry: Sendable {
        let chunks: Int
        let session: Session

        init(chunks: Int, session: Session) {
            self.chunks = chunks
            self.session = session
        }
    }

    private struct Storage {
        var server: [ByteKey: ServerEntry] = [:]
        var cookie: [ByteKey: CookieEntry] = [:]
    }

    private let storage = Mutex(Storage())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    func server(_ cookieValue: [UInt8]) -> ServerEntry? {
        storage.withLock { $0.server[ByteKey(cookieValue)] }
    }

    func remember(_ cookieValue: [UInt8], _ entry: ServerEntry) {
        storage.withLock { Self.put(entry, at: cookieValue, in: &$0.server, capacity: capacity) }
    }

    /// Stores `entry`, emptying `map` first when it is full.
    private static func put<Entry>(_ entry: Entry, at key: [UInt8], in map: inout [ByteKey: Entry], capacity: Int) {
        if map.count >= capacity { map.removeAll(keepingCapacity: true) }
        map[ByteKey(key)] = entry
    }

    func forget(_ cookieValue: [UInt8]) {
        storage.withLock { _ = $0.server.removeValue(forKey: ByteKey(cookieValue)) }
    }

    func cookie(_ joined: [UInt8]) -> CookieEntry? {
        storage.withLock { $0.cookie[ByteKey(joined)] }
    }

    func remember(_ joined: [UInt8], _ entry: CookieEntry) {
        storage.withLock { Self.put(entry, at: joined, in: &$0.cookie, capacity: capacity) }
    }
}
