/// A minimal length-prefixed binary writer for sealed payloads.
///
/// Sessions are opened on every API call; a fixed binary layout decodes in well under a
/// microsecond where JSON would cost tens of microseconds on Linux.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty writer.
    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// Appends one byte.
    public mutating func write(_ value: UInt8) { bytes.append(value) }

    /// Appends a big-endian 64-bit integer.
    public mutating func write(_ value: Int64) {
        let bits = UInt64(bitPattern: value)
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift)))
        }
    }

    /// Appends a length-prefixed byte string.
    public mutating func write(bytes value: some Collection<UInt8>) {
        let count = UInt32(value.count)
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: count >> UInt32(shift)))
        }
        bytes.append(contentsOf: value)
    }

    /// Appends a length-prefixed UTF-8 string.
    public mutating func write(_ value: String) { write(bytes: value.utf8) }

    /// Appends a presence flag and, if present, the string.
    public mutating func write(_ value: String?) {
        if let value {
            write(UInt8(1))
            write(value)
        } else {
            write(UInt8(0))
        }
    }

    /// Appends a presence flag and, if present, the integer.
    public mutating func write(_ value: Int64?) {
        if let value {
            write(UInt8(1))
            write(value)
        } else {
            write(UInt8(0))
        }
    }
}

/// Reads what ``ByteWriter`` wrote; every read fails (returns nil) past the end.
public struct ByteReader {
    let bytes: [UInt8]
    var index = 0

    /// Reads from `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// True when every byte was consumed.
    public var isAtEnd: Bool { index == bytes.count }

    /// Reads one byte.
    public mutating func readByte() -> UInt8? {
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    /// Reads a big-endian 64-bit integer.
    public mutating func readInt64() -> Int64? {
        guard bytes.count - index >= 8 else { return nil }
        var value: UInt64 = 0
        for offset in 0..<8 { value = (value << 8) | UInt64(bytes[index + offset]) }
        index += 8
        return Int64(bitPattern: value)
    }

    /// Reads a length-prefixed byte string.
    public mutating func readBytes() -> [UInt8]? {
        guard bytes.count - index >= 4 else { return nil }
        var count = 0
        for offset in 0..<4 { count = (count << 8) | Int(bytes[index + offset]) }
        index += 4
        guard bytes.count - index >= count else { return nil }
        defer { index += count }
        return Array(bytes[index..<(index + count)])
    }

    /// Reads a length-prefixed UTF-8 string (invalid UTF-8 fails).
    public mutating func readString() -> String? {
        guard let raw = readBytes() else { return nil }
        return String(validating: raw, as: UTF8.self)
    }

    /// Reads an optional string; the outer nil means malformed input.
    public mutating func readOptionalString() -> String?? {
        switch readByte() {
        case 0: return .some(nil)
        case 1: return readString().map { .some($0) } ?? nil
        default: return nil
        }
    }

    /// Reads an optional integer; the outer nil means malformed input.
    public mutating func readOptionalInt64() -> Int64?? {
        switch readByte() {
        case 0: return .some(nil)
        case 1: return readInt64().map { .some($0) } ?? nil
        default: return nil
        }
    }
}
