import Crypto

/// The sealing keys of a deployment: the first key seals, every key opens.
///
/// Each configured 256-bit secret is never used directly: a separate AES key is derived per
/// ``SealingPurpose`` with HKDF-SHA256, so a value sealed for one purpose (say a login
/// transaction) can never be opened as another (a session).
public struct KeyRing: Sendable {
    /// One configured secret.
    public struct Key: Sendable {
        /// The key id, written into every sealed value so rotation knows which key to use.
        public var id: String
        /// The raw 32-byte secret.
        public var secret: [UInt8]

        /// Creates a key. `secret` must be 32 bytes and `id` 1–32 printable ASCII characters.
        public init(id: String, secret: [UInt8]) {
            self.id = id
            self.secret = secret
        }
    }

    @usableFromInline
    struct DerivedKey: Sendable {
        @usableFromInline let id: [UInt8]
        @usableFromInline let keys: [SymmetricKey]  // indexed by SealingPurpose.index
    }

    @usableFromInline let derived: [DerivedKey]

    /// The ids of the keys, active key first.
    public let keyIDs: [String]

    /// Builds a ring. The first key is the active (sealing) key.
    /// - Throws: ``KeyRingError`` if the ring is empty, a secret is not 32 bytes, an id is invalid
    ///   or repeated.
    public init(keys: [Key]) throws {
        guard !keys.isEmpty else { throw KeyRingError.empty }
        var seen = Set<String>()
        var derived: [DerivedKey] = []
        for key in keys {
            guard key.secret.count == 32 else {
                throw KeyRingError.badSecretLength(id: key.id, length: key.secret.count)
            }
            guard KeyRing.isValidID(key.id) else { throw KeyRingError.badID(key.id) }
            guard seen.insert(key.id).inserted else { throw KeyRingError.duplicateID(key.id) }
            let master = SymmetricKey(data: key.secret)
            let purposeKeys = SealingPurpose.all.map { purpose in
                HKDF<SHA256>.deriveKey(
                    inputKeyMaterial: master,
                    info: Array("swift-bff/v1/\(purpose.name)".utf8),
                    outputByteCount: 32
                )
            }
            derived.append(DerivedKey(id: Array(key.id.utf8), keys: purposeKeys))
        }
        self.derived = derived
        self.keyIDs = keys.map(\.id)
    }

    /// Whether `id` is usable as a key id: 1–32 characters from `[A-Za-z0-9._-]`.
    public static func isValidID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }
}

/// What a sealed value is for. Part of the key derivation and of the authenticated data.
public struct SealingPurpose: Sendable, Hashable {
    @usableFromInline let index: Int
    /// The purpose's stable name (used in HKDF `info`).
    public let name: String

    /// A server-side session ticket (session id + per-session key) in the session cookie.
    public static let sessionTicket = SealingPurpose(index: 0, name: "session-ticket")
    /// A whole session sealed into the cookie (cookie mode).
    public static let sessionCookie = SealingPurpose(index: 1, name: "session-cookie")
    /// A pending login (state, nonce, PKCE verifier, return URL).
    public static let loginTransaction = SealingPurpose(index: 2, name: "login-transaction")
    /// A pending RP-initiated logout (state, return URL).
    public static let logoutTransaction = SealingPurpose(index: 3, name: "logout-transaction")
    /// A file or row kept at rest by the gateway itself.
    public static let atRest = SealingPurpose(index: 4, name: "at-rest")

    static let all: [SealingPurpose] = [.sessionTicket, .sessionCookie, .loginTransaction, .logoutTransaction, .atRest]
}

/// Why a key ring could not be built.
public struct KeyRingError: Error, CustomStringConvertible, Equatable {
    private enum Base: Equatable {
        case empty
        case badSecretLength(String, Int)
        case badID(String)
        case duplicateID(String)
    }
    private let base: Base

    static let empty = KeyRingError(base: .empty)
    static func badSecretLength(id: String, length: Int) -> Self { .init(base: .badSecretLength(id, length)) }
    static func badID(_ id: String) -> Self { .init(base: .badID(id)) }
    static func duplicateID(_ id: String) -> Self { .init(base: .duplicateID(id)) }

    /// A description that names the key id but never its secret.
    public var description: String {
        switch base {
        case .empty: return "the key ring is empty"
        case .badSecretLength(let id, let length): return "key '\(id)' has \(length) bytes; 32 are required"
        case .badID(let id): return "key id '\(id)' must be 1-32 characters of A-Z a-z 0-9 . _ -"
        case .duplicateID(let id): return "key id '\(id)' appears twice"
        }
    }
}
