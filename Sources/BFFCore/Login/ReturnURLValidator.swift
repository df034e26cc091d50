/// Decides whether a `returnUrl` is a safe local path (SPEC §3).
///
/// Accepted: exactly `/`, or `/` followed by anything but `/` or `\`, with no control characters,
/// no backslash, no raw non-ASCII and no `.`/`..` segments anywhere. Every verdict must survive percent-decoding
/// (applied repeatedly), so `/%2F%2Fevil.example` and `/%5Cevil` are refused like `//evil.example`.
public enum ReturnURLValidator {
    /// Longest accepted value, in bytes.
    public static let maximumLength = 2048

    /// Whether `value` may be used as a redirect target.
    public static func isValid(_ value: String) -> Bool {
        var current = Array(value.utf8)
        guard !current.isEmpty, current.count <= maximumLength else { return false }
        // Check the raw form, then each decoded form until decoding changes nothing.
        var decoded = false
        for _ in 0..<4 {
            guard isSafeLocalPath(current, allowNonASCII: decoded) else { return false }
            guard let next = percentDecode(current) else { return false }
            if next == current { return true }
            current = next
            decoded = true
        }
        return false  // still decoding after four rounds: refuse
    }

    /// Raw values must be ASCII; decoded ones may carry UTF-8 (which must then be valid).
    static func isSafeLocalPath(_ bytes: [UInt8], allowNonASCII: Bool) -> Bool {
        guard let first = bytes.first, first == UInt8(ascii: "/") else { return false }
        if bytes.count > 1, bytes[1] == UInt8(ascii: "/") || bytes[1] == UInt8(ascii: "\\") { return false }
        for byte in bytes {
            if byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\\") { return false }
            if byte >= 0x80 && !allowNonASCII { return false }
        }
        // No dot segments: after normalisation "/.//x" would become the network path "//x".
        let pathEnd = bytes.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? bytes.count
        for segment in bytes[..<pathEnd].split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if segment.elementsEqual([0x2E]) || segment.elementsEqual([0x2E, 0x2E]) { return false }
        }
        return !allowNonASCII || String(validating: bytes, as: UTF8.self) != nil
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
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]),
                    let low = hexValue(bytes[index + 2])
                else {
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
