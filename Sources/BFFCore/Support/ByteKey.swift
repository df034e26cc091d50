#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Bytes as a dictionary key: hashed in one call and compared with `memcmp`. `[UInt8]`'s own
/// `Hashable` feeds the hasher one byte at a time and compares element by element, and the
/// lookups that key on bytes (the opened-session cache by cookie value, the stores' records by
/// session key) run on every API call.
public struct ByteKey: Hashable, Sendable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.count)
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func == (lhs: ByteKey, rhs: ByteKey) -> Bool { same(lhs.bytes, rhs.bytes) }

    /// Whether two byte arrays hold the same bytes: `memcmp`, not `Array.==`, which compares
    /// element by element when the arrays are not the same storage (a record the store read again
    /// holds a new copy of the same ciphertext — on every call).
    public static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                guard let x = x.baseAddress, let y = y.baseAddress else { return true }  // both empty
                return x == y || memcmp(x, y, a.count) == 0
            }
        }
    }
}
