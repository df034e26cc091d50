import BFFHummingbird
import Synchronization
import Tracing

/// Which traces are recorded: a rule for new traces and whether a caller's decision (a trusted
/// proxy's `traceparent`) is followed — OpenTelemetry's `OTEL_TRACES_SAMPLER` choices.
struct TraceSampling: Sendable, Equatable {
    enum Root: Sendable, Equatable {
        case always
        case never
        /// This share of new traces, decided by the trace id (so every service agrees).
        case ratio(Double)
    }

    var root: Root
    /// Follow the parent's `sampled` flag when there is a parent (`parentbased_*`).
    var followParent = true

    /// Whether a span of trace `traceLow` (the id's low half) with `parent` is recorded.
    func sample(traceLow: UInt64, parent: TraceContext?) -> Bool {
        if followParent, let parent { return parent.sampled }
        switch root {
        case .always: return true
        case .never: return false
        case .ratio(let ratio):
            if ratio >= 1 { return true }
            if ratio <= 0 { return false }
            return traceLow < UInt64(ratio * 18_446_744_073_709_551_615.0)
        }
    }
}

/// The gateway's OpenTelemetry tracer. A span is a small object with one lock; when it ends it is
/// appended to the exporter's buffer (one more lock) — no task, actor or stream per span, which
/// is what made tracing every request cost more than half the gateway's throughput with
/// swift-otel's tracer. ``OTLPExporter`` sends the buffer in batches.
final class OTLPTracer: HTTPFieldsTracer {
    typealias Span = OTLPSpan

    let sampling: TraceSampling
    let exporter: OTLPExporter
    private let ids = TraceIDGenerator()

    init(sampling: TraceSampling, exporter: OTLPExporter) {
        self.sampling = sampling
        self.exporter = exporter
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> OTLPSpan {
        let context = context()
        return start(operationName, baggage: context, parent: context.traceContext, kind: kind) {
            instant().nanosecondsSinceEpoch
        }
    }

    func startHTTPSpan(_ operationName: String, context: ServiceContext, ofKind kind: SpanKind) -> any HTTPFieldsSpan {
        start(operationName, baggage: context, parent: context.traceContext, kind: kind) {
            DefaultTracerClock.now.nanosecondsSinceEpoch
        }
    }

    /// A span in `parent`'s trace (a new trace without one); `baggage` is the rest of the context
    /// its own context is built from, when asked for.
    func start(
        _ operationName: String, baggage: ServiceContext, parent: TraceContext?, kind: SpanKind,
        at now: () -> UInt64
    ) -> OTLPSpan {
        let traceHigh = parent?.traceHigh ?? ids.next()
        let traceLow = parent?.traceLow ?? ids.next()
        let trace = TraceContext(
            traceHigh: traceHigh, traceLow: traceLow, spanID: ids.next(),
            sampled: sampling.sample(traceLow: traceLow, parent: parent), traceState: parent?.traceState ?? "")
        return OTLPSpan(
            operationName: operationName, kind: kind, baggage: baggage, trace: trace,
            parentSpanID: parent?.spanID ?? 0, start: trace.sampled ? now() : 0, tracer: self)
    }

    func forceFlush() { exporter.flushSoon() }

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        context.traceContext?.forEachHeader { name, value in injector.inject(value, forKey: name, into: &carrier) }
    }

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let traceparent = extractor.extract(key: "traceparent", from: carrier),
            let trace = TraceContext(
                traceparent: traceparent, traceState: extractor.extract(key: "tracestate", from: carrier))
        else { return }
        context.traceContext = trace
    }
}

/// One span. Not recording (no exporter, no record) when its trace is not sampled: it still
/// carries a context, so the `traceparent` sent on says "not sampled".
/// Every access to `record` while the span is open holds the lock (`locked`); once ended, the
/// record is the exporter's and is never changed again. A `Mutex` cannot be used: `attributes`
/// needs a `_modify` accessor (so `span.attributes["k"] = v` edits the stored dictionary in place
/// instead of copying it at every set), and a coroutine cannot yield inside `Mutex.withLock`.
final class OTLPSpan: HTTPFieldsSpan, @unchecked Sendable {  // justified: record only under `locked` (see above)
    /// The context it started from; its own (``context``) is built when asked for, which an
    /// API call on the event loop never does unless work is suspended inside it.
    private let baggage: ServiceContext
    let trace: TraceContext
    var isRecording: Bool { record != nil }
    private let tracer: OTLPTracer
    /// What the span records, handed to the exporter as it is when the span ends (no copy).
    private let record: FinishedSpan?
    /// The name it started with (what an unsampled span, which has no record, answers).
    private let startName: String
    /// The span's lock: a flag in the span itself (no allocation, unlike a pthread mutex). A span
    /// is touched by one request at a time, so it is all but never contended; a second thread
    /// spins for the few instructions the holder needs.
    private let locked = Atomic(false)
    /// Set under the lock; after it, `record` is not touched.
    private var ended = false

    init(
        operationName: String, kind: SpanKind, baggage: ServiceContext, trace: TraceContext, parentSpanID: UInt64,
        start: UInt64, tracer: OTLPTracer
    ) {
        self.baggage = baggage
        self.trace = trace
        self.tracer = tracer
        self.startName = operationName
        self.record =
            trace.sampled
            ? FinishedSpan(trace: trace, parentSpanID: parentSpanID, name: operationName, kind: kind, start: start)
            : nil
    }

    var context: ServiceContext {
        var context = baggage
        context.traceContext = trace
        return context
    }

    func startChild(_ operationName: String, ofKind kind: SpanKind) -> any HTTPFieldsSpan {
        tracer.start(operationName, baggage: baggage, parent: trace, kind: kind) {
            DefaultTracerClock.now.nanosecondsSinceEpoch
        }
    }

    func forEachPropagationHeader(_ body: (_ name: String, _ value: String) -> Void) { trace.forEachHeader(body) }

    private func lock() {
        while !locked.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {}
    }

    private func unlock() { locked.store(false, ordering: .releasing) }

    private func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Changes the record while the span is open (nothing once it ended, or when not recording).
    private func change(_ body: (FinishedSpan) -> Void) {
        guard let record else { return }
        withLock {
            if !ended { body(record) }
        }
    }

    var operationName: String {
        get { record.map { record in withLock { record.http.name(from: record.name) } } ?? startName }
        set {
            change { record in
                record.name = newValue
                record.http.routeInName = false
            }
        }
    }

    /// The attributes, the HTTP fields that are set among them. A write that names one of the
    /// fields (with its type) sets the field (``HTTPSpanFields/absorb(_:)``): the dictionary and
    /// the fields never hold the same name.
    var attributes: SpanAttributes {
        get {
            guard let record else { return [:] }
            return withLock {
                var attributes = record.attributes
                record.http.forEachAttribute { attributes[$0] = $1 }
                return attributes
            }
        }
        set {
            change { record in
                record.attributes = newValue
                record.http.absorb(&record.attributes)
            }
        }
        _modify {
            if let record {
                lock()
                defer { unlock() }
                if ended {
                    var discarded = SpanAttributes()
                    yield &discarded
                } else {
                    yield &record.attributes
                    record.http.absorb(&record.attributes)
                }
            } else {
                var discarded = SpanAttributes()
                yield &discarded
            }
        }
    }

    func editHTTPFields(_ edit: (inout HTTPSpanFields) -> Void) {
        change { edit(&$0.http) }
    }

    func setStatus(_ status: SpanStatus) {
        // OpenTelemetry: `ok` is final; an error may replace unset.
        change { record in
            if record.status?.code != .ok { record.status = status }
        }
    }

    func addEvent(_ event: SpanEvent) {
        change { $0.events.append(event) }
    }

    func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {
        guard isRecording else { return }
        // The type and the error's own description, cut at 256 characters (the gateway's errors
        // name what failed, never a token; a store error carries the driver's message, never a
        // parameter).
        var eventAttributes = attributes
        eventAttributes["exception.type"] = String(reflecting: type(of: error))
        eventAttributes["exception.message"] = String(String(describing: error).prefix(256))
        addEvent(SpanEvent(name: "exception", at: instant(), attributes: eventAttributes))
    }

    func addLink(_ link: SpanLink) {
        guard let context = link.context.traceContext else { return }
        change { $0.links.append((context: context, attributes: link.attributes)) }
    }

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        guard let record else { return }
        let first: Bool = withLock {
            guard !ended else { return false }
            ended = true
            record.end = max(instant().nanosecondsSinceEpoch, record.start)
            // An HTTP failure (status 500 and up, an error type) is an error unless the status
            // was set: `ok` is final, an explicit error says more.
            if record.status == nil, record.http.isError { record.status = SpanStatus(code: .error) }
            return true
        }
        if first { tracer.exporter.append(record) }
    }
}

/// A span's record: filled in under its span's lock while the span is open, then handed to the
/// exporter as it is (appending it to the exporter's buffer is the hand-over) and never changed
/// again. An object, so that hand-over copies nothing.
final class FinishedSpan: @unchecked Sendable {  // justified: changed only under its span's lock until handed over
    let trace: TraceContext
    let parentSpanID: UInt64
    let kind: SpanKind
    let start: UInt64
    fileprivate(set) var name: String
    /// Never before `start`.
    fileprivate(set) var end: UInt64 = 0
    /// Never holds a name of ``http`` (``HTTPSpanFields/absorb(_:)``).
    fileprivate(set) var attributes = SpanAttributes()
    fileprivate(set) var http = HTTPSpanFields()
    fileprivate(set) var status: SpanStatus?
    fileprivate(set) var events: [SpanEvent] = []
    fileprivate(set) var links: [(context: TraceContext, attributes: SpanAttributes)] = []

    init(trace: TraceContext, parentSpanID: UInt64, name: String, kind: SpanKind, start: UInt64) {
        self.trace = trace
        self.parentSpanID = parentSpanID
        self.name = name
        self.kind = kind
        self.start = start
    }
}
