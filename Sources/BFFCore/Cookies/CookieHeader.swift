/// Byte-level parsing of a `Cookie` request header (RFC 6265 §5.4 syntax, parsed leniently).
///
/// Runs on every request, so it scans the raw bytes once and never builds strings for cookies it
/// does not need. Hostile input (no `=`, stray separators, quotes, control bytes, duplicates) is
/// skipped, never fatal. When a name appears twice the first occurrence wins.
public struct CookieHeader: Sendable {
    /// The raw header bytes (several `Cookie` fields joined with `; `).
    public let bytes: [UInt8]

    /// Wraps header bytes.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Wraps the values of one or more `Cookie` header fields.
    public init(fields: some Sequence<String>) {
        var joined: [UInt8] = []
        for field in fields {
            if !joined.isEmpty { joined.append(contentsOf: [UInt8(ascii: ";"), UInt8(ascii: " ")]) }
            joined.append(contentsOf: field.utf8)
        }
        self.bytes = joined
    }

    /// One `name=value` pair, as ranges into ``bytes``.
    public struct Pair: Sendable {
        /// Range of the name.
        public let name: Range<Int>
        /// Range of the value (without surrounding double quotes).
        public let value: Range<Int>

        @inlinable
        init(name: Range<Int>, value: Range<Int>) {
            self.name = name
            self.value = value
        }
    }

    /// Calls `body` for each well-formed pair, in order, until it returns false.
    @inlinable
    public func forEachPair(_ body: (Pair) -> Bool) {
        let count = bytes.count
        var index = 0
        while index < count {
            // skip separators and whitespace
            while index < count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x3B { index += 1 }
            let nameStart = index
            var equals = -1
            while index < count, bytes[index] != 0x3B {
                if equals < 0, bytes[index] == 0x3D { equals = index }
                index += 1
            }
            let pairEnd = index
            guard equals > nameStart else { continue }
            var nameEnd = equals
            while nameEnd > nameStart, bytes[nameEnd - 1] == 0x20 || bytes[nameEnd - 1] == 0x09 { nameEnd -= 1 }
            var valueStart = equals + 1
            var valueEnd = pairEnd
            while valueStart < valueEnd, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
            while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            if valueEnd - valueStart >= 2, bytes[valueStart] == 0x22, bytes[valueEnd - 1] == 0x22 {
                valueStart += 1
                valueEnd -= 1
            }
            guard nameEnd > nameStart, CookieHeader.isToken(bytes[nameStart..<nameEnd]),
                CookieHeader.isCookieValue(bytes[valueStart..<valueEnd])
            else { continue }
            if !body(Pair(name: nameStart..<nameEnd, value: valueStart..<valueEnd)) { return }
        }
    }

    /// The value of the first cookie called `name`, or nil.
    @inlinable
    public func value(named name: some Collection<UInt8>) -> ArraySlice<UInt8>? {
        var found: Range<Int>?
        forEachPair { pair in
            if bytes[pair.name].elementsEqual(name) {
                found = pair.value
                return false
            }
            return true
        }
        return found.map { bytes[$0] }
    }

    /// The value of the first cookie called `name`, or nil.
    @inlinable
    public func value(named name: String) -> ArraySlice<UInt8>? {
        value(named: Array(name.utf8))
    }

    /// Every (name, value) whose name starts with `prefix`, in header order, first occurrence of a
    /// name only.
    public func pairs(withPrefix prefix: String) -> [(name: String, value: ArraySlice<UInt8>)] {
        let prefixBytes = Array(prefix.utf8)
        var result: [(name: String, value: ArraySlice<UInt8>)] = []
        var seen = Set<String>()
        forEachPair { pair in
            let name = bytes[pair.name]
            if name.starts(with: prefixBytes) {
                let string = String(decoding: name, as: UTF8.self)
                if seen.insert(string).inserted { result.append((string, bytes[pair.value])) }
            }
            return true
        }
        return result
    }

    /// RFC 7230 token characters.
    @usableFromInline
    static func isToken(_ bytes: ArraySlice<UInt8>) -> Bool {
        tokenTable.withUnsafeBufferPointer { table in bytes.allSatisfy { table[Int($0)] } }
    }

    /// RFC 6265 cookie-octet characters.
    @usableFromInline
    static func isCookieValue(_ bytes: ArraySlice<UInt8>) -> Bool {
        valueTable.withUnsafeBufferPointer { table in bytes.allSatisfy { table[Int($0)] } }
    }

    @usableFromInline
    static let tokenTable: [Bool] = (0..<256).map { byte in
        switch byte {
        case 0x21, 0x23...0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x30...0x39, 0x41...0x5A, 0x5E...0x7A, 0x7C, 0x7E: return true
        default: return false
        }
    }

    @usableFromInline
    static let valueTable: [Bool] = (0..<256).map { byte in
        switch byte {
        case 0x21, 0x23...0x2B, 0x2D...0x3A, 0x3C...0x5B, 0x5D...0x7E: return true
        default: return false
        }
    }
}
