import BFFHummingbird
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
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func fixed32Field(_ field: UInt64, _ value: UInt32) {
        key(field, 5)
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// How many bytes `value` takes as a varint.
    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        while value >> (7 * UInt64(size)) != 0 { size += 1 }
        return size
    }

    /// A field holding a message whose body is `length` bytes, written next by the caller: for
    /// bodies whose length is known up front (no room kept, nothing moved).
    mutating func messageHeader(_ field: UInt64, length: Int) {
        key(field, 2)
        varint(UInt64(length))
    }

    mutating func bytesField(_ field: UInt64, _ value: some Collection<UInt8>) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func stringField(_ field: UInt64, _ value: String) {
        messageHeader(field, length: value.utf8.count)
        append(value)
    }

    /// A string's UTF-8 bytes, copied in one go when the string is stored contiguously (the
    /// gateway's are).
    mutating func append(_ value: String) {
        if value.utf8.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil {
            bytes.append(contentsOf: value.utf8)
        }
    }

    mutating func appendBigEndian(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// A nested message, written in place: one byte is kept for its length, and only a body of
    /// 128 bytes or more moves to make room for a longer varint.
    mutating func message(_ field: UInt64, _ body: (inout ProtobufWriter) -> Void) {
        key(field, 2)
        let start = bytes.count
        bytes.append(0)
        body(&self)
        var length = UInt64(bytes.count - start - 1)
        let size = Self.varintSize(length)
        if size > 1 { bytes.insert(contentsOf: repeatElement(0, count: size - 1), at: start + 1) }
        for index in 0..<size {
            bytes[start + index] = UInt8(truncatingIfNeeded: length) & 0x7F | (index < size - 1 ? 0x80 : 0)
            length >>= 7
        }
    }
}

/// `ExportTraceServiceRequest` (opentelemetry-proto `collector/trace/v1`) for a batch of spans.
enum OTLPEncoding {
    static func request(
        _ spans: some Collection<FinishedSpan>, resource: [(String, SpanAttribute)],
        scope: (name: String, version: String)
    ) -> [UInt8] {
        var writer = ProtobufWriter()
        request(spans, resource: resource, scope: scope, into: &writer)
        return writer.bytes
    }

    /// The request written into `writer` (emptied first, its capacity kept: the exporter reuses
    /// one writer, so a batch allocates nothing of this size).
    static func request(
        _ spans: some Collection<FinishedSpan>, resource: [(String, SpanAttribute)],
        scope: (name: String, version: String), into writer: inout ProtobufWriter
    ) {
        writer.bytes.removeAll(keepingCapacity: true)
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
    }

    /// A 16-byte trace id field.
    static func traceID(_ writer: inout ProtobufWriter, field: UInt64, _ trace: TraceContext) {
        writer.key(field, 2)
        writer.varint(16)
        writer.appendBigEndian(trace.traceHigh)
        writer.appendBigEndian(trace.traceLow)
    }

    /// An 8-byte span id field.
    static func spanID(_ writer: inout ProtobufWriter, field: UInt64, _ id: UInt64) {
        writer.key(field, 2)
        writer.varint(8)
        writer.appendBigEndian(id)
    }

    /// One `Span`.
    static func encode(_ span: FinishedSpan, into writer: inout ProtobufWriter) {
        traceID(&writer, field: 1, span.trace)
        spanID(&writer, field: 2, span.trace.spanID)
        if !span.trace.traceState.isEmpty { writer.stringField(3, span.trace.traceState) }
        if span.parentSpanID != 0 { spanID(&writer, field: 4, span.parentSpanID) }
        if let route = span.http.routeAppended(to: span.name) {
            // "<name> <route>", written in place (no string built for it).
            let length = span.name.utf8.count + 1 + route.utf8.count
            writer.messageHeader(5, length: length)
            writer.append(span.name)
            writer.bytes.append(UInt8(ascii: " "))
            writer.append(route)
        } else {
            writer.stringField(5, span.name)
        }
        writer.varintField(6, kind(span.kind))
        writer.fixed64Field(7, span.start)
        writer.fixed64Field(8, span.end)
        // (The dictionary never holds a name of the HTTP fields: `HTTPSpanFields.absorb`.)
        var fields = FieldWriter(field: 9)
        swap(&fields.writer, &writer)  // (moved, not copied: the bytes stay uniquely held)
        span.http.visit(&fields)
        swap(&fields.writer, &writer)
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
                traceID(&linkMessage, field: 1, link.context)
                spanID(&linkMessage, field: 2, link.context.spanID)
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

    /// Writes the HTTP fields of a span as `KeyValue`s (``HTTPSpanFields/visit(_:)``), each value
    /// as it is typed.
    struct FieldWriter: HTTPSpanFieldVisitor {
        let field: UInt64
        var writer = ProtobufWriter()

        init(field: UInt64) { self.field = field }

        mutating func visit(_ name: String, string value: String) {
            OTLPEncoding.keyValue(&writer, field: field, key: name, string: value)
        }
        mutating func visit(_ name: String, int value: Int64) {
            OTLPEncoding.keyValue(&writer, field: field, key: name, number: UInt64(bitPattern: value), tag: 3)
        }
        mutating func visit(_ name: String, bool value: Bool) {
            OTLPEncoding.keyValue(&writer, field: field, key: name, number: value ? 1 : 0, tag: 2)
        }
    }

    /// A `KeyValue` as field `field`. A string, integer or boolean value (all the gateway's own
    /// attributes) is written with its lengths computed up front; other values are nested.
    static func keyValue(_ writer: inout ProtobufWriter, field: UInt64, key: String, value: SpanAttribute) {
        switch value {
        case .string(let text): keyValue(&writer, field: field, key: key, string: text)
        case .bool(let flag): keyValue(&writer, field: field, key: key, number: flag ? 1 : 0, tag: 2)
        case .int32(let number):
            keyValue(&writer, field: field, key: key, number: UInt64(bitPattern: Int64(number)), tag: 3)
        case .int64(let number): keyValue(&writer, field: field, key: key, number: UInt64(bitPattern: number), tag: 3)
        default:
            writer.message(field) { keyValue in
                keyValue.stringField(1, key)
                keyValue.message(2) { anyValue(&$0, value) }
            }
        }
    }

    /// The bytes of a `KeyValue`'s key field (1), and of a value field (2) holding an `AnyValue`
    /// of `anyValueLength` bytes.
    static func keyValueLength(key: Int, anyValue: Int) -> Int {
        1 + ProtobufWriter.varintSize(UInt64(key)) + key + 1 + ProtobufWriter.varintSize(UInt64(anyValue)) + anyValue
    }

    /// A `KeyValue` whose value is a string (`AnyValue` field 1).
    static func keyValue(_ writer: inout ProtobufWriter, field: UInt64, key: String, string value: String) {
        let keyLength = key.utf8.count
        let valueLength = value.utf8.count
        let anyValueLength = 1 + ProtobufWriter.varintSize(UInt64(valueLength)) + valueLength
        writer.messageHeader(field, length: keyValueLength(key: keyLength, anyValue: anyValueLength))
        writer.messageHeader(1, length: keyLength)
        writer.append(key)
        writer.messageHeader(2, length: anyValueLength)
        writer.messageHeader(1, length: valueLength)
        writer.append(value)
    }

    /// A `KeyValue` whose value is a varint: a boolean (`AnyValue` field 2) or an integer (3).
    static func keyValue(_ writer: inout ProtobufWriter, field: UInt64, key: String, number: UInt64, tag: UInt64) {
        let keyLength = key.utf8.count
        let anyValueLength = 1 + ProtobufWriter.varintSize(number)
        writer.messageHeader(field, length: keyValueLength(key: keyLength, anyValue: anyValueLength))
        writer.messageHeader(1, length: keyLength)
        writer.append(key)
        writer.messageHeader(2, length: anyValueLength)
        writer.varintField(tag, number)
    }

    /// A string, boolean or integer value as its `AnyValue` field: the tag, and the text or the
    /// varint.
    static func scalar(_ value: SpanAttribute) -> (tag: UInt64, number: UInt64?, text: String?)? {
        switch value {
        case .string(let text): (1, nil, text)
        case .bool(let flag): (2, flag ? 1 : 0, nil)
        case .int32(let number): (3, UInt64(bitPattern: Int64(number)), nil)
        case .int64(let number): (3, UInt64(bitPattern: number), nil)
        default: nil
        }
    }

    /// An `AnyValue`'s one field.
    static func anyValue(_ writer: inout ProtobufWriter, _ value: SpanAttribute) {
        if let scalar = scalar(value) {
            if let text = scalar.text {
                writer.stringField(scalar.tag, text)
            } else {
                writer.varintField(scalar.tag, scalar.number ?? 0)
            }
            return
        }
        func array(_ values: [SpanAttribute]) {
            writer.message(5) { arrayValue in
                for value in values { arrayValue.message(1) { anyValue(&$0, value) } }
            }
        }
        switch value {
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
