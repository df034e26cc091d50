/// Base64url (RFC 4648 §5) without padding, working on bytes.
///
/// Used for cookie values, PKCE, state and JWT segments. It is on the hot path (every API call
/// decodes the session cookie), so it works on `UInt8` and never goes through Foundation.
public enum Base64URL {
    @usableFromInline
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    @usableFromInline
    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Encodes bytes as unpadded base64url.
    @inlinable
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            output.append(alphabet[Int(b0 >> 2)])
            output.append(alphabet[Int(((b0 & 0x03) << 4) | ((b1 ?? 0) >> 4))])
            if let b1 {
                output.append(alphabet[Int(((b1 & 0x0F) << 2) | ((b2 ?? 0) >> 6))])
                if let b2 { output.append(alphabet[Int(b2 & 0x3F)]) }
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes unpadded (or padded) base64url; returns nil for any character outside the alphabet
    /// or an impossible length.
    @inlinable
    public static func decode(_ input: some Collection<UInt8>) -> [UInt8]? {
        if let result = input.withContiguousStorageIfAvailable({ decode(buffer: $0) }) { return result }
        return Array(input).withUnsafeBufferPointer { decode(buffer: $0) }
    }

    /// Decodes from contiguous bytes (the hot path: cookie values).
    @usableFromInline
    static func decode(buffer input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var end = input.count
        // Tolerate trailing padding, which some IdPs emit in JWK members.
        while end > 0, input[end - 1] == UInt8(ascii: "=") { end -= 1 }
        if input.count - end > 2 || end % 4 == 1 { return nil }
        let outputCount = end / 4 * 3 + max(0, end % 4 - 1)
        return decodeTable.withUnsafeBufferPointer { table -> [UInt8]? in
            var failed = false
            let output = [UInt8](unsafeUninitializedCapacity: outputCount) { out, initialized in
                var accumulator: UInt32 = 0
                var bits: UInt32 = 0
                var written = 0
                for index in 0..<end {
                    let value = table[Int(input[index])]
                    if value == 0xFF {
                        failed = true
                        break
                    }
                    accumulator = (accumulator << 6) | UInt32(value)
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        out[written] = UInt8(truncatingIfNeeded: accumulator >> bits)
                        written += 1
                    }
                }
                initialized = failed ? 0 : written
            }
            return failed ? nil : output
        }
    }

    /// Decodes a string.
    @inlinable
    public static func decode(_ string: String) -> [UInt8]? {
        decode(Array(string.utf8))
    }
}
