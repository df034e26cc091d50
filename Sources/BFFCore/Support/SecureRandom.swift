/// A source of cryptographically secure random bytes.
///
/// Injected wherever the BFF creates secrets (session ids and keys, state, nonce, PKCE verifiers)
/// so tests can make those values deterministic.
public protocol SecureRandom: Sendable {
    /// Returns `count` random bytes.
    func bytes(_ count: Int) -> [UInt8]
}

/// The operating system's CSPRNG (`SystemRandomNumberGenerator`, getrandom(2) on Linux).
public struct SystemSecureRandom: SecureRandom {
    /// Creates the system random source.
    public init() {}

    /// Returns `count` random bytes from the system CSPRNG.
    public func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var output = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = generator.next()
            withUnsafeBytes(of: &word) { raw in
                for byte in raw where index < count {
                    output[index] = byte
                    index += 1
                }
            }
        }
        return output
    }
}

extension SecureRandom {
    /// A random token of `byteCount` bytes, base64url-encoded.
    public func token(byteCount: Int = 32) -> String {
        Base64URL.encode(bytes(byteCount))
    }
}
