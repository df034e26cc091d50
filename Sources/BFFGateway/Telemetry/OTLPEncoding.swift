import Tracing

/// Protocol Buffers wire format, as much as OTLP's trace messages need.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func key(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }

    mutating func varintField(_ field: UInt64, _ value: UInt64) {
        key(field, 0)
        varint(value)
    }

    mutating func fixed64Field(_ field: UInt64, _ value: UInt64) {
        key(field, 1)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func fixed32Field(_ field: UInt64, _ value: UInt32) {
        key(field, 5)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func bytesField(_ field: UInt64, _ value: some Collection<UInt8>) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func stringField(_ field: UInt64, _ value: String) { bytesField(field, value.utf8) }

    /// A nested message: written into its own buffer, then appended after its length.
    mutating func message(_ field: UInt64, _ body: (inout ProtobufWriter) -> Void) {
        var nested = ProtobufWriter()
        body(&nested)
        bytesField(field, nested.bytes)
    }
}

/// `ExportTraceServiceRequest` (opentelemetry-proto `collector/trace/v1`) for a batch of spans.
enum OTLPEncoding {
    static func request(
        _ spans: [FinishedSpan], resource: [(String, SpanAttribute)], scope: (name: String, version: String)
    ) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.bytes.reserveCapacity(256 + spans.count * 256)
        writer.message(1) { resourceSpans in  // resource_spans
            resourceSpans.message(1) { resourceMessage in  // resource
                for (key, value) in resource { keyValue(&resourceMessage, field: 1, key: key, value: value) }
            }
            resourceSpans.message(2) { scopeSpans in  // scope_spans
                scopeSpans.message(1) { scopeMessage in  // scope
                    scopeMessage.stringField(1, scope.name)
                    scopeMessage.stringField(2, scope.version)
                }
                for span in spans { scopeSpans.message(2) { encode(span, into: &$0) } }
            }
        }
        return writer.bytes
    }

    static func traceID(_ trace: TraceContext) -> [UInt8] { bigEndian(trace.traceHigh) + bigEndian(trace.traceLow) }

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    /// One `Span`.
    static func encode(_ span: FinishedSpan, into writer: inout ProtobufWriter) {
        writer.bytesField(1, traceID(span.trace))
        writer.bytesField(2, bigEndian(span.trace.spanID))
        if !span.trace.traceState.isEmpty { writer.stringField(3, span.trace.traceState) }
        if span.parentSpanID != 0 { writer.bytesField(4, bigEndian(span.parentSpanID)) }
        writer.stringField(5, span.name)
        writer.varintField(6, kind(span.kind))
        writer.fixed64Field(7, span.start)
        writer.fixed64Field(8, max(span.end, span.start))
        span.attributes.forEach { key, value in keyValue(&writer, field: 9, key: key, value: value) }
        for event in span.events {
            writer.message(11) { eventMessage in
                eventMessage.fixed64Field(1, event.nanosecondsSinceEpoch)
                eventMessage.stringField(2, event.name)
                event.attributes.forEach { key, value in keyValue(&eventMessage, field: 3, key: key, value: value) }
            }
        }
        for link in span.links {
            writer.message(13) { linkMessage in
                linkMessage.bytesField(1, traceID(link.context))
                linkMessage.bytesField(2, bigEndian(link.context.spanID))
                if !link.context.traceState.isEmpty { linkMessage.stringField(3, link.context.traceState) }
                link.attributes.forEach { key, value in keyValue(&linkMessage, field: 4, key: key, value: value) }
            }
        }
        if let status = span.status {
            writer.message(15) { statusMessage in
                if let message = status.message { statusMessage.stringField(2, message) }
                statusMessage.varintField(3, status.code == .ok ? 1 : 2)
            }
        }
        // flags: the W3C trace flags (sampled) in the low byte.
        writer.fixed32Field(16, span.trace.sampled ? 1 : 0)
    }

    static func kind(_ kind: SpanKind) -> UInt64 {
        switch kind {
        case .internal: 1
        case .server: 2
        case .client: 3
        case .producer: 4
        case .consumer: 5
        }
    }

    /// A `KeyValue` as field `field`.
    static func keyValue(_ writer: inout ProtobufWriter, field: UInt64, key: String, value: SpanAttribute) {
        writer.message(field) { keyValue in
            keyValue.stringField(1, key)
            keyValue.message(2) { anyValue(&$0, value) }
        }
    }

    /// An `AnyValue`'s one field.
    static func anyValue(_ writer: inout ProtobufWriter, _ value: SpanAttribute) {
        func array(_ values: [SpanAttribute]) {
            writer.message(5) { arrayValue in
                for value in values { arrayValue.message(1) { anyValue(&$0, value) } }
            }
        }
        switch value {
        case .string(let text): writer.stringField(1, text)
        case .bool(let flag): writer.varintField(2, flag ? 1 : 0)
        case .int32(let number): writer.varintField(3, UInt64(bitPattern: Int64(number)))
        case .int64(let number): writer.varintField(3, UInt64(bitPattern: number))
        case .double(let number): writer.fixed64Field(4, number.bitPattern)
        case .stringArray(let texts): array(texts.map { .string($0) })
        case .boolArray(let flags): array(flags.map { .bool($0) })
        case .int32Array(let numbers): array(numbers.map { .int32($0) })
        case .int64Array(let numbers): array(numbers.map { .int64($0) })
        case .doubleArray(let numbers): array(numbers.map { .double($0) })
        case .stringConvertible(let convertible): writer.stringField(1, convertible.description)
        case .stringConvertibleArray(let convertibles): array(convertibles.map { .string($0.description) })
        default: writer.stringField(1, "\(value)")
        }
    }
}
