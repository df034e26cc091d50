import Synchronization
import Tracing

/// A span's identity as W3C Trace Context carries it: trace id, span id, sampled flag and the
/// vendor `tracestate`, kept in a request's `ServiceContext`.
struct TraceContext: Sendable, Hashable {
    /// The 16-byte trace id as two big-endian halves; never both zero.
    var traceHigh: UInt64
    var traceLow: UInt64
    /// The 8-byte span id; never zero.
    var spanID: UInt64
    /// Whether the trace is recorded (the `sampled` flag).
    var sampled: Bool
    /// The caller's `tracestate`, passed on unchanged ("" without one).
    var traceState: String = ""

    /// The `traceparent` value (version 00), built in one allocation.
    var traceparent: String {
        String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            Self.writeHex(traceHigh, into: buffer, at: 3)
            Self.writeHex(traceLow, into: buffer, at: 19)
            buffer[35] = UInt8(ascii: "-")
            Self.writeHex(spanID, into: buffer, at: 36)
            buffer[52] = UInt8(ascii: "-")
            buffer[53] = UInt8(ascii: "0")
            buffer[54] = sampled ? UInt8(ascii: "1") : UInt8(ascii: "0")
            return 55
        }
    }

    /// The headers a request made in this span carries: `traceparent`, and `tracestate` always —
    /// an empty value tells the gateway's injectors to remove a `tracestate` the caller sent (an
    /// untrusted client's, or one that was dropped as malformed): it does not belong to the
    /// gateway's trace.
    func forEachHeader(_ body: (_ name: String, _ value: String) -> Void) {
        body("traceparent", traceparent)
        body("tracestate", traceState)
    }

    /// Parses a `traceparent` (and its `tracestate`), or nil when it is not valid W3C Trace
    /// Context: a version other than `ff` (version 00 exactly 55 characters; later versions may
    /// append `-` fields), lowercase hex, a trace id and a parent id that are not all zeros.
    init?(traceparent: String, traceState: String?) {
        let bytes = Array(traceparent.utf8)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"),
            bytes[52] == UInt8(ascii: "-"),
            let version = Self.parseHex(bytes[0..<2]), version != 0xFF,
            version != 0 || bytes.count == 55, bytes.count == 55 || bytes[55] == UInt8(ascii: "-"),
            let high = Self.parseHex(bytes[3..<19]), let low = Self.parseHex(bytes[19..<35]), high != 0 || low != 0,
            let span = Self.parseHex(bytes[36..<52]), span != 0,
            let flags = Self.parseHex(bytes[53..<55])
        else { return nil }
        self.traceHigh = high
        self.traceLow = low
        self.spanID = span
        self.sampled = flags & 1 == 1
        // A `tracestate` is passed on only when it is short and printable (else it is dropped, as
        // W3C Trace Context allows).
        if let traceState, traceState.utf8.count <= 512, traceState.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) {
            self.traceState = traceState
        }
    }

    init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool, traceState: String = "") {
        self.traceHigh = traceHigh
        self.traceLow = traceLow
        self.spanID = spanID
        self.sampled = sampled
        self.traceState = traceState
    }

    /// Sixteen lowercase hex digits.
    static func hex(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            writeHex(value, into: buffer, at: 0)
            return 16
        }
    }

    /// Writes `value` as sixteen lowercase hex digits at `offset`.
    static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        for index in 0..<16 {
            let digit = UInt8(truncatingIfNeeded: value >> (60 - 4 * UInt64(index))) & 0xF
            buffer[offset + index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
        }
    }

    /// Lowercase hex digits (at most 16) as a number; nil for anything else.
    static func parseHex(_ digits: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        for digit in digits {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value << 4 | UInt64(digit - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value << 4 | UInt64(digit - UInt8(ascii: "a") + 10)
            default: return nil
            }
        }
        return value
    }
}

/// Where a request's current span context lives in its `ServiceContext`.
enum TraceContextKey: ServiceContextKey {
    typealias Value = TraceContext
    static var nameOverride: String? { "bff-trace-context" }
}

extension ServiceContext {
    /// The current span's trace context (or a trusted caller's, before the first span).
    var traceContext: TraceContext? {
        get { self[TraceContextKey.self] }
        set { self[TraceContextKey.self] = newValue }
    }
}

/// Trace and span ids: SipHash (Swift's `Hasher`, keyed with the process's random seed) of a
/// counter — unique in practice, and not predictable from ids an upstream has seen (a plain
/// mixer over a counter could be inverted), with no lock or system call per id.
final class TraceIDGenerator: Sendable {
    private let counter = Atomic<UInt64>(0)
    private let salt: UInt64

    init() {
        var random = SystemRandomNumberGenerator()
        salt = random.next()
    }

    /// The next non-zero id.
    func next() -> UInt64 {
        while true {
            var hasher = Hasher()
            hasher.combine(salt)
            hasher.combine(counter.wrappingAdd(1, ordering: .relaxed).newValue)
            let id = UInt64(bitPattern: Int64(hasher.finalize()))
            if id != 0 { return id }
        }
    }
}
