import Tracing

// The HTTP spans of the API path (issue 12): the attributes every HTTP span records, kept as
// plain fields by tracers that can (the gateway's OTLP tracer), and the event-loop path's way of
// starting and editing its spans without a dynamic cast, a dictionary or a `ServiceContext`.

/// The attributes every HTTP span of the gateway carries (a request's server span, an upstream
/// call's client span), as plain fields. The one place their OpenTelemetry names are written:
/// spans of any tracer get them as attributes (``forEachAttribute(_:)``); a span that keeps them
/// as fields (``HTTPFieldsSpan``, the gateway's OTLP spans) encodes them through the same function.
public struct HTTPSpanFields: Sendable, Equatable {
    /// `http.request.method`.
    public var method: String?
    /// `http.route`: the configured route, never the request path.
    public var route: String?
    /// `bff.api`: the API route an upstream call serves.
    public var api: String?
    /// `http.response.status_code`.
    public var status: Int?
    /// `error.type`.
    public var errorType: String?
    /// `bff.handoff`: the adapter that took the call over.
    public var handoff: String?
    /// `bff.incomplete`: the response was cut short.
    public var incomplete = false
    /// `bff.client_gone`: the client left before the response ended.
    public var clientGone = false
    /// The span's name gets `" " + route` appended (a server span named by its route once known).
    public var routeInName = false

    public init() {}

    /// Each field that is set, with its attribute name and its value as it is typed (an exporter
    /// writes these without boxing each in a `SpanAttribute`).
    public func visit(_ visitor: inout some HTTPSpanFieldVisitor) {
        if let method { visitor.visit("http.request.method", string: method) }
        if let route { visitor.visit("http.route", string: route) }
        if let api { visitor.visit("bff.api", string: api) }
        if let status { visitor.visit("http.response.status_code", int: Int64(status)) }
        if let errorType { visitor.visit("error.type", string: errorType) }
        if let handoff { visitor.visit("bff.handoff", string: handoff) }
        if incomplete { visitor.visit("bff.incomplete", bool: true) }
        if clientGone { visitor.visit("bff.client_gone", bool: true) }
    }

    /// Each field that is set, as an attribute.
    public func forEachAttribute(_ body: (String, SpanAttribute) -> Void) {
        struct Attributes: HTTPSpanFieldVisitor {
            let body: (String, SpanAttribute) -> Void
            func visit(_ name: String, string value: String) { body(name, .string(value)) }
            func visit(_ name: String, int value: Int64) { body(name, .int64(value)) }
            func visit(_ name: String, bool value: Bool) { body(name, .bool(value)) }
        }
        withoutActuallyEscaping(body) { body in
            var attributes = Attributes(body: body)
            visit(&attributes)
        }
    }

    /// Takes the entries of `attributes` that name one of these fields, with a value of the
    /// field's type, into the fields (they leave the dictionary): a span that keeps the fields
    /// apart stays consistent when generic code writes them as attributes — the last write wins,
    /// whichever API made it, and the error status follows what is exported.
    public mutating func absorb(_ attributes: inout SpanAttributes) {
        func text(_ name: String) -> String? {
            guard case .string(let value) = attributes[name]?.toSpanAttribute() else { return nil }
            attributes[name] = nil
            return value
        }
        func flag(_ name: String) -> Bool? {
            guard case .bool(let value) = attributes[name]?.toSpanAttribute() else { return nil }
            attributes[name] = nil
            return value
        }
        if attributes.isEmpty { return }
        if let value = text("http.request.method") { method = value }
        if let value = text("http.route") { route = value }
        if let value = text("bff.api") { api = value }
        switch attributes["http.response.status_code"]?.toSpanAttribute() {
        case .int64(let value)?:
            status = Int(value)
            attributes["http.response.status_code"] = nil
        case .int32(let value)?:
            status = Int(value)
            attributes["http.response.status_code"] = nil
        default: break
        }
        if let value = text("error.type") { errorType = value }
        if let value = text("bff.handoff") { handoff = value }
        if let value = flag("bff.incomplete") { incomplete = value }
        if let value = flag("bff.client_gone") { clientGone = value }
    }

    /// The name a span started as `name` ends with.
    public func name(from name: String) -> String {
        guard let route = routeAppended(to: name) else { return name }
        return name + " " + route
    }

    /// The route that goes after `name` (and a space) in the span's name; nil when the name
    /// stays as it is (no route asked for or known, or the name already ends with it).
    public func routeAppended(to name: String) -> String? {
        guard routeInName, let route else { return nil }
        let nameBytes = name.utf8
        let routeBytes = route.utf8
        guard nameBytes.count > routeBytes.count,
            nameBytes.reversed().starts(with: routeBytes.reversed()),
            nameBytes[nameBytes.index(nameBytes.endIndex, offsetBy: -routeBytes.count - 1)] == UInt8(ascii: " ")
        else { return route }
        return nil
    }

    /// Whether `status` marks the span as failed (from 500 on, as OpenTelemetry's HTTP
    /// conventions say; and any span with an error type).
    public var isError: Bool { (status ?? 0) >= 500 || errorType != nil }
}

/// What ``HTTPSpanFields/visit(_:)`` hands each field that is set to.
public protocol HTTPSpanFieldVisitor {
    mutating func visit(_ name: String, string value: String)
    mutating func visit(_ name: String, int value: Int64)
    mutating func visit(_ name: String, bool value: Bool)
}

/// A span that keeps ``HTTPSpanFields`` as fields rather than in its attribute dictionary: no
/// dictionary, hashing or boxed values for what every API call records. Its exporter writes them
/// as the attributes ``HTTPSpanFields/forEachAttribute(_:)`` names.
public protocol HTTPFieldsSpan: Span, AnyObject {
    /// Edits the fields in one access; a span that is not recording ignores it. `edit` may run
    /// under the span's lock: it must not touch the span.
    func editHTTPFields(_ edit: (inout HTTPSpanFields) -> Void)
    /// A child span, started without building this span's `ServiceContext`.
    func startChild(_ operationName: String, ofKind kind: SpanKind) -> any HTTPFieldsSpan
    /// The W3C Trace Context headers a request made inside this span carries, as the tracer's
    /// `inject` would write them (an empty value: the header is removed).
    func forEachPropagationHeader(_ body: (_ name: String, _ value: String) -> Void)
}

/// A tracer whose spans keep ``HTTPSpanFields`` as fields. The event-loop API path starts its
/// spans through it, so an API call's tracing needs no dynamic cast, attribute dictionary or
/// `ServiceContext` (the latter only if work is suspended inside the span).
public protocol HTTPFieldsTracer: Tracer {
    /// A span whose parent is `context`'s trace (the rest of `context` kept for its children).
    func startHTTPSpan(_ operationName: String, context: ServiceContext, ofKind kind: SpanKind) -> any HTTPFieldsSpan
}

/// The tracer of the event-loop API path: the tracer's ``HTTPFieldsTracer`` side when it has
/// one (looked up once, here), else its generic spans. An object: calls share it without
/// copying two existentials each.
final class CallTracer: Sendable {
    let tracer: any Tracer
    private let fields: (any HTTPFieldsTracer)?

    init(_ tracer: any Tracer) {
        self.tracer = tracer
        self.fields = tracer as? any HTTPFieldsTracer
    }

    func start(_ name: String, context: ServiceContext, ofKind kind: SpanKind) -> CallSpan {
        if let fields { return CallSpan(.fields(fields.startHTTPSpan(name, context: context, ofKind: kind))) }
        return CallSpan(.generic(GenericCallSpan(startSpan(tracer, name, context: context, ofKind: kind), tracer)))
    }
}

/// Any tracer's span with its tracer (one reference in a ``CallSpan``).
final class GenericCallSpan: Sendable {
    let span: any Span
    let tracer: any Tracer

    init(_ span: any Span, _ tracer: any Tracer) {
        self.span = span
        self.tracer = tracer
    }
}

/// A span of an API call on the event loop: one of the tracer's ``HTTPFieldsSpan``s, or any
/// tracer's span (its fields then written as attributes by ``Span/recordHTTP(_:)``).
struct CallSpan {
    enum Storage {
        case fields(any HTTPFieldsSpan)
        case generic(GenericCallSpan)
    }

    let storage: Storage

    init(_ storage: Storage) { self.storage = storage }

    var span: any Span {
        switch storage {
        case .fields(let span): span
        case .generic(let generic): generic.span
        }
    }

    func record(_ edit: (inout HTTPSpanFields) -> Void) {
        switch storage {
        case .fields(let span): span.editHTTPFields(edit)
        case .generic(let generic): generic.span.recordHTTP(edit)
        }
    }

    func recordStatus(_ status: Int) { record { $0.status = status } }

    func end() { span.end() }

    func child(_ name: String, ofKind kind: SpanKind) -> CallSpan {
        switch storage {
        case .fields(let span): CallSpan(.fields(span.startChild(name, ofKind: kind)))
        case .generic(let generic):
            CallSpan(
                .generic(
                    GenericCallSpan(
                        startSpan(generic.tracer, name, context: generic.span.context, ofKind: kind), generic.tracer)))
        }
    }

    /// Writes the span's trace headers into an outgoing request.
    func inject<Carrier, Inject: Injector>(into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        switch storage {
        case .fields(let span):
            span.forEachPropagationHeader { name, value in injector.inject(value, forKey: name, into: &carrier) }
        case .generic(let generic):
            generic.tracer.inject(generic.span.context, into: &carrier, using: injector)
        }
    }
}

extension Span {
    /// Records HTTP fields: in place on an ``HTTPFieldsSpan``; on any other span as attributes,
    /// with the name extended by the route when asked, and an error status for a failure (on
    /// those spans an error status cannot be taken back: record the status once per span, as
    /// every caller does).
    func recordHTTP(_ edit: (inout HTTPSpanFields) -> Void) {
        if let fieldsSpan = self as? any HTTPFieldsSpan {
            fieldsSpan.editHTTPFields(edit)
            return
        }
        var fields = HTTPSpanFields()
        edit(&fields)
        if fields.routeInName { operationName = fields.name(from: operationName) }
        updateAttributes { attributes in fields.forEachAttribute { attributes[$0] = $1 } }
        if fields.isError { setStatus(SpanStatus(code: .error)) }
    }

    /// Records the answer's status (an error status from 500 on).
    func recordStatus(_ status: Int) { recordHTTP { $0.status = status } }
}
