/// Decides whether a `returnUrl` is a safe local path (SPEC §3).
///
/// Accepted: exactly `/`, or `/` followed by anything but `/` or `\`, with no control characters,
/// no backslash and no raw non-ASCII anywhere. Every verdict must survive percent-decoding
/// (applied repeatedly), so `/%2F%2Fevil.example` and `/%5Cevil` are refused like `//evil.example`.
public enum ReturnURLValidator {
    /// Longest accepted value, in bytes.
    public static let maximumLength = 2048

    /// Whether `value` may be used as a redirect target.
    public static func isValid(_ value: String) -> Bool {
        var current = Array(value.utf8)
        guard !current.isEmpty, current.count <= maximumLength else { return false }
        // Check the raw form, then each decoded form until decoding changes nothing.
        for _ in 0..<4 {
            guard isSafeLocalPath(current) else { return false }
            guard let decoded = percentDecode(current) else { return false }
            if decoded == current { return true }
            current = decoded
        }
        return false  // still decoding after four rounds: refuse
    }

    static func isSafeLocalPath(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first, first == UInt8(ascii: "/") else { return false }
        if bytes.count > 1, bytes[1] == UInt8(ascii: "/") || bytes[1] == UInt8(ascii: "\\") { return false }
        for byte in bytes {
            if byte < 0x20 || byte == 0x7F || byte >= 0x80 || byte == UInt8(ascii: "\\") { return false }
        }
        return true
    }

    /// Percent-decodes; nil for a malformed escape.
    static func percentDecode(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.contains(UInt8(ascii: "%")) else { return bytes }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                    return nil
                }
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(byte)
                index += 1
            }
        }
        return output
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Decides whether a `prompt` value may be forwarded to the IdP.
public enum PromptValidator {
    /// The values the BFF forwards.
    public static let known: Set<String> = ["none", "login", "consent", "select_account", "create"]

    /// Whether `value` is known and, if the IdP lists `prompt_values_supported`, listed there.
    public static func isValid(_ value: String, advertised: [String]?) -> Bool {
        guard known.contains(value) else { return false }
        if let advertised { return advertised.contains(value) }
        return true
    }
}
