import BFFTesting
import Foundation
import HTTPTypes
import InMemoryTracing
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import Testing
import Tracing

@testable import BFFGateway
@testable import BFFHummingbird

/// The gateway's own OpenTelemetry tracer, alone: W3C Trace Context parsing, sampling, the OTLP
/// protobuf it writes (decoded by the test receiver's independent decoder), and the exporter's
/// batching, queue bound, `OTEL_*` variables, failures and shutdown.
@Suite("OTLP tracer")
struct OTLPTracerTests {
    typealias Receiver = TracingTests.Receiver

    static let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parent = "00f067aa0ba902b7"

    /// An exporter whose spans stay queued (its collector is never contacted): tests read
    /// `pending` and encode it themselves.
    static func unsentExporter() -> OTLPExporter {
        OTLPExporter(
            settings: .init(url: "http://127.0.0.1:1/v1/traces"), version: "t", logger: TestEnvironment.quietLogger)
    }

    /// The context of a request from a trusted proxy that sent trace ``trace``, parent ``parent``
    /// and `tracestate: vendor=x`.
    static func trustedCallerContext(_ tracer: OTLPTracer) -> ServiceContext {
        var incoming = ServiceContext.topLevel
        tracer.extract(
            ["traceparent": "00-\(trace)-\(parent)-01", "tracestate": "vendor=x"], into: &incoming,
            using: DictionaryExtractor())
        return incoming
    }

    @Test func traceparentIsParsedStrictly() throws {
        let valid = try #require(TraceContext(traceparent: "00-\(Self.trace)-\(Self.parent)-01", traceState: "a=1"))
        #expect(valid.traceparent == "00-\(Self.trace)-\(Self.parent)-01")
        #expect(valid.sampled && valid.traceState == "a=1")
        #expect(TraceContext(traceparent: "00-\(Self.trace)-\(Self.parent)-00", traceState: nil)?.sampled == false)
        // A later version may append fields; its first four are read.
        #expect(TraceContext(traceparent: "01-\(Self.trace)-\(Self.parent)-01-extra", traceState: nil) != nil)
        let refused: [(String, String)] = [
            ("version ff", "ff-\(Self.trace)-\(Self.parent)-01"),
            ("version 00 with more", "00-\(Self.trace)-\(Self.parent)-01-x"),
            ("uppercase hex", "00-\(Self.trace.uppercased())-\(Self.parent)-01"),
            ("zero trace id", "00-\(String(repeating: "0", count: 32))-\(Self.parent)-01"),
            ("zero parent id", "00-\(Self.trace)-\(String(repeating: "0", count: 16))-01"),
            ("short", "00-\(Self.trace.dropLast())-\(Self.parent)-01"),
            ("not hex", "00-\(Self.trace)-\(Self.parent.dropLast())g-01"),
            ("bad separator", "00_\(Self.trace)-\(Self.parent)-01"),
            ("empty", ""),
        ]
        for (reason, value) in refused {
            #expect(TraceContext(traceparent: value, traceState: nil) == nil, "\(reason)")
        }
        // A tracestate that is too long or not printable is dropped, the traceparent kept.
        let long = TraceContext(
            traceparent: "00-\(Self.trace)-\(Self.parent)-01", traceState: String(repeating: "a", count: 513))
        #expect(long?.traceState == "")
        #expect(
            TraceContext(traceparent: "00-\(Self.trace)-\(Self.parent)-01", traceState: "a=1\r\nx: y")?.traceState == ""
        )
    }

    @Test func samplingFollowsTheParentOrTheRatio() {
        let sampledParent = TraceContext(traceHigh: 1, traceLow: 1, spanID: 1, sampled: true)
        let unsampledParent = TraceContext(traceHigh: 1, traceLow: 1, spanID: 1, sampled: false)
        let parentBasedNever = TraceSampling(root: .never, followParent: true)
        #expect(parentBasedNever.sample(traceLow: 0, parent: sampledParent))
        #expect(!parentBasedNever.sample(traceLow: 0, parent: nil))
        #expect(!TraceSampling(root: .always, followParent: true).sample(traceLow: 0, parent: unsampledParent))
        #expect(TraceSampling(root: .always, followParent: false).sample(traceLow: 0, parent: unsampledParent))
        // A ratio keeps about that share of trace ids (and the same ids every time).
        let ids = TraceIDGenerator()
        let half = TraceSampling(root: .ratio(0.25), followParent: true)
        let kept = (0..<20_000).map { _ in ids.next() }.filter { half.sample(traceLow: $0, parent: nil) }.count
        #expect((4_400...5_600).contains(kept), "\(kept) of 20000 at 0.25")
        #expect(!TraceSampling(root: .ratio(0), followParent: true).sample(traceLow: 0, parent: nil))
        #expect(TraceSampling(root: .ratio(1), followParent: true).sample(traceLow: .max, parent: nil))
    }

    /// Spans as the tracer makes them, encoded and decoded again: ids, parent, kind, times,
    /// attributes of every type, status, events, and the W3C headers a child sends on.
    @Test func spansEncodeAsOTLP() throws {
        let exporter = Self.unsentExporter()
        let tracer = OTLPTracer(sampling: .init(root: .always), exporter: exporter)
        let incoming = Self.trustedCallerContext(tracer)
        let server = tracer.startSpan("HTTP GET", context: incoming, ofKind: .server)
        server.operationName = "HTTP GET /api/x"
        server.attributes["http.response.status_code"] = 502
        server.attributes["bff.incomplete"] = true
        server.attributes["bff.ratio"] = 0.5
        server.attributes["http.request.method"] = "GET"
        // A value of 300 bytes: its KeyValue's length needs a two-byte varint.
        server.attributes["bff.long"] = String(repeating: "x", count: 300)
        server.setStatus(SpanStatus(code: .error))
        server.recordError(URLError(.timedOut))
        let client = tracer.startSpan("upstream GET", context: server.context, ofKind: .client)
        var headers: [String: String] = [:]
        tracer.inject(client.context, into: &headers, using: DictionaryInjector())
        client.end()
        server.end()
        server.end()  // a second end adds nothing

        let spans = Receiver.decodeRequest(
            OTLPEncoding.request(exporter.pending, resource: [("service.name", .string("bff"))], scope: ("s", "1"))[...]
        )
        try #require(spans.count == 2, "\(spans)")
        let (upstream, call) = (spans[0], spans[1])
        #expect(hex(call.traceID) == Self.trace, "the trusted caller's trace is continued")
        #expect(hex(call.parentSpanID) == Self.parent)
        #expect(call.name == "HTTP GET /api/x" && call.kind == TracingTests.server)
        #expect(
            call.attributes == [
                "http.response.status_code": "502", "bff.incomplete": "true", "bff.ratio": "0.5",
                "http.request.method": "GET", "bff.long": String(repeating: "x", count: 300),
            ])
        #expect(call.statusCode == 2)
        #expect(call.events == ["exception"])
        #expect(call.traceState == "vendor=x")
        #expect(call.end >= call.start && call.start > 1_700_000_000_000_000_000)
        #expect(upstream.parentSpanID == call.spanID && upstream.traceID == call.traceID)
        #expect(upstream.kind == TracingTests.client)
        #expect(headers["traceparent"] == "00-\(Self.trace)-\(hex(upstream.spanID))-01")
        #expect(headers["tracestate"] == "vendor=x")
    }

    /// What every API call records (method, route, status, API, flags) is kept in plain fields of
    /// the gateway's spans, not in their attribute dictionary; it comes out as the same name,
    /// attributes and error status that any other tracer's spans get from the same edits.
    @Test func httpFieldsComeOutAsTheAttributesOtherTracersGet() throws {
        func record(_ tracer: some Tracer) {
            let server = tracer.startSpan("HTTP GET", context: .topLevel, ofKind: .server)
            server.recordHTTP { $0.method = "GET" }
            let client = tracer.startSpan("upstream GET", context: server.context, ofKind: .client)
            client.recordHTTP {
                $0.method = "GET"
                $0.api = "/api/x"
            }
            client.recordHTTP { $0.errorType = "timeout" }
            client.end()
            server.attributes["bff.extra"] = "kept"
            server.recordHTTP {
                $0.route = "/api/x"
                $0.routeInName = true
                $0.status = 502
                $0.incomplete = true
                $0.clientGone = true
            }
            server.end()
        }
        let exporter = Self.unsentExporter()
        record(OTLPTracer(sampling: .init(root: .always), exporter: exporter))
        #expect(exporter.pending.allSatisfy { $0.http != HTTPSpanFields() }, "kept as fields, not attributes")
        #expect(exporter.pending.allSatisfy { $0.attributes.count <= 1 })
        let spans = Receiver.decodeRequest(
            OTLPEncoding.request(exporter.pending, resource: [], scope: ("s", "1"))[...])
        try #require(spans.count == 2, "\(spans)")
        let (upstream, call) = (spans[0], spans[1])
        let expectedCall = [
            "http.request.method": "GET", "http.route": "/api/x", "http.response.status_code": "502",
            "bff.incomplete": "true", "bff.client_gone": "true", "bff.extra": "kept",
        ]
        let expectedUpstream = ["http.request.method": "GET", "bff.api": "/api/x", "error.type": "timeout"]
        #expect(call.name == "HTTP GET /api/x" && call.attributes == expectedCall)
        #expect(call.statusCode == 2, "a 502 is an error")
        #expect(upstream.name == "upstream GET" && upstream.attributes == expectedUpstream)
        #expect(upstream.statusCode == 2, "an error type is an error")

        // Any other tracer: the same edits as attributes.
        let memory = InMemoryTracer()
        record(memory)
        let finished = memory.finishedSpans
        try #require(finished.count == 2)
        func strings(_ attributes: SpanAttributes) -> [String: String] {
            var result: [String: String] = [:]
            attributes.forEach { key, value in
                switch value {
                case .string(let text): result[key] = text
                case .int64(let number): result[key] = String(number)
                case .bool(let flag): result[key] = String(flag)
                default: result[key] = "\(value)"
                }
            }
            return result
        }
        #expect(finished[1].operationName == "HTTP GET /api/x" && strings(finished[1].attributes) == expectedCall)
        #expect(finished[1].status?.code == .error)
        #expect(finished[0].operationName == "upstream GET" && strings(finished[0].attributes) == expectedUpstream)
        #expect(finished[0].status?.code == .error)

        // The last write wins, whichever API made it; the error status follows what is exported.
        let mixed = Self.unsentExporter()
        let mixedTracer = OTLPTracer(sampling: .init(root: .always), exporter: mixed)
        let overridden = mixedTracer.startSpan("HTTP GET", context: .topLevel, ofKind: .server)
        overridden.recordHTTP { $0.status = 200 }
        overridden.attributes["http.response.status_code"] = 201
        #expect(overridden.attributes["http.response.status_code"]?.toSpanAttribute() == .int64(201))
        overridden.end()
        // Read, edited and written back (as `updateAttributes` does), then a field set again.
        let roundTrip = mixedTracer.startSpan("HTTP GET", context: .topLevel, ofKind: .server)
        roundTrip.recordHTTP { $0.status = 200 }
        roundTrip.updateAttributes { $0["bff.other"] = 1 }
        roundTrip.recordStatus(503)
        roundTrip.end()
        let mixedSpans = Receiver.decodeRequest(
            OTLPEncoding.request(mixed.pending, resource: [], scope: ("s", "1"))[...])
        try #require(mixedSpans.count == 2)
        #expect(mixedSpans[0].attributes == ["http.response.status_code": "201"] && mixedSpans[0].statusCode == 0)
        #expect(mixedSpans[1].attributes == ["http.response.status_code": "503", "bff.other": "1"])
        #expect(mixedSpans[1].statusCode == 2)
        #expect(mixed.pending.allSatisfy { $0.attributes["http.response.status_code"] == nil }, "kept once")

        // An unsampled span has no record but keeps its name.
        let unsampled = OTLPTracer(sampling: .init(root: .never), exporter: mixed)
            .startSpan("HTTP GET", context: .topLevel, ofKind: .server)
        #expect(unsampled.operationName == "HTTP GET" && !unsampled.isRecording)
    }

    /// Attribute values and keys at the edges of the protobuf lengths the encoder computes up
    /// front: empty, 127/128 and 16383/16384 bytes (one-, two- and three-byte lengths), `false`,
    /// negative integers (ten-byte varints); decoded by the test receiver's own decoder.
    @Test func scalarAttributesEncodeAtEveryLengthBoundary() throws {
        let exporter = Self.unsentExporter()
        let span = OTLPTracer(sampling: .init(root: .always), exporter: exporter)
            .startSpan("edges", context: .topLevel, ofKind: .internal)
        var expected: [String: String] = [:]
        for length in [0, 1, 127, 128, 16383, 16384, 70000] {
            let value = String(repeating: "v", count: length)
            span.attributes.set("s\(length)", value: .string(value))
            expected["s\(length)"] = value
        }
        let longKey = String(repeating: "k", count: 128)
        span.attributes[longKey] = "x"
        expected[longKey] = "x"
        span.attributes["false"] = false
        expected["false"] = "false"
        span.attributes.set("int64", value: .int64(-1))
        expected["int64"] = "-1"
        span.attributes.set("int32", value: .int32(Int32.min))
        expected["int32"] = String(Int32.min)
        span.attributes.set("max", value: .int64(Int64.max))
        expected["max"] = String(Int64.max)
        span.attributes["zero"] = 0
        expected["zero"] = "0"
        span.end()
        let spans = Receiver.decodeRequest(OTLPEncoding.request(exporter.pending, resource: [], scope: ("s", "1"))[...])
        try #require(spans.count == 1)
        // Lengths first (a failure prints them, not 70,000 characters), then the values.
        #expect(spans[0].attributes.mapValues(\.utf8.count) == expected.mapValues(\.utf8.count))
        let sameValues = spans[0].attributes == expected
        #expect(sameValues, "a value decoded differently")
        #expect(spans[0].name == "edges")
    }

    /// The event-loop API path starts the OTLP tracer's spans through its fast side (no dynamic
    /// cast, dictionary or `ServiceContext` per call): the same tree, ids and headers as the
    /// generic API; any other tracer gets the generic spans.
    @Test func callSpansKeepTheTreeAndHeadersOfGenericSpans() throws {
        let exporter = Self.unsentExporter()
        let tracer = OTLPTracer(sampling: .init(root: .always), exporter: exporter)
        let incoming = Self.trustedCallerContext(tracer)
        let calls = CallTracer(tracer)
        let server = calls.start("HTTP GET", context: incoming, ofKind: .server)
        guard case .fields = server.storage else {
            Issue.record("the OTLP tracer's API-call spans keep their fields")
            return
        }
        server.record { $0.method = "GET" }
        let upstream = server.child("upstream GET", ofKind: .client)
        var headers = ["tracestate": "untrusted=1"]
        upstream.inject(into: &headers, using: DictionaryInjector())
        upstream.recordStatus(200)
        upstream.end()
        // Its context, built only now, carries its own span.
        let context = try #require(server.span.context.traceContext)
        server.record {
            $0.route = "/api/x"
            $0.routeInName = true
            $0.status = 200
        }
        server.end()
        // Ended: its record is the exporter's, and later changes are ignored.
        server.record { $0.status = 500 }
        server.span.attributes["bff.late"] = "x"
        server.span.setStatus(SpanStatus(code: .error))
        server.end()
        let spans = Receiver.decodeRequest(OTLPEncoding.request(exporter.pending, resource: [], scope: ("s", "1"))[...])
        try #require(spans.count == 2, "\(spans)")
        let (client, call) = (spans[0], spans[1])
        #expect(
            call.attributes == [
                "http.request.method": "GET", "http.route": "/api/x", "http.response.status_code": "200",
            ])
        #expect(call.statusCode == 0, "unset")
        #expect(hex(call.traceID) == Self.trace && hex(call.parentSpanID) == Self.parent)
        #expect(String(format: "%016llx", context.spanID) == hex(call.spanID) && context.traceState == "vendor=x")
        #expect(client.traceID == call.traceID && client.parentSpanID == call.spanID)
        #expect(call.name == "HTTP GET /api/x" && client.name == "upstream GET")
        #expect(headers == ["traceparent": "00-\(Self.trace)-\(hex(client.spanID))-01", "tracestate": "vendor=x"])
        #expect(client.attributes == ["http.response.status_code": "200"])

        // Any other tracer: its own spans, the fields as attributes.
        let memory = InMemoryTracer()
        let generic = CallTracer(memory).start("HTTP GET", context: .topLevel, ofKind: .server)
        guard case .generic = generic.storage else {
            Issue.record("a tracer without HTTP fields gets generic spans")
            return
        }
        generic.child("upstream GET", ofKind: .client).end()
        generic.record { $0.status = 503 }
        generic.end()
        #expect(memory.finishedSpans.map(\.operationName) == ["upstream GET", "HTTP GET"])
        #expect(memory.finishedSpans.last?.attributes["http.response.status_code"]?.toSpanAttribute() == .int64(503))
        #expect(memory.finishedSpans.last?.status?.code == .error)
    }

    /// An unsampled trace records nothing but still tells the upstream "not sampled".
    @Test func anUnsampledTraceIsPropagatedButNotRecorded() {
        let exporter = Self.unsentExporter()
        let tracer = OTLPTracer(sampling: .init(root: .never), exporter: exporter)
        let span = tracer.startSpan("HTTP GET", context: .topLevel, ofKind: .server)
        span.attributes["x"] = "y"
        var headers: [String: String] = [:]
        tracer.inject(span.context, into: &headers, using: DictionaryInjector())
        span.end()
        #expect(!span.isRecording && span.attributes.isEmpty)
        #expect(headers["traceparent"]?.hasSuffix("-00") == true, "\(headers)")
        #expect(exporter.queued == 0)
    }

    /// A full queue drops spans and says how many (once); batches are at most the batch size;
    /// the `OTEL_*` headers reach the collector and are never logged; `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES` make the resource; what is left goes out at shutdown.
    @Test func theExporterBatchesBoundsItsQueueAndSendsTheRestAtShutdown() async throws {
        let receiver = Receiver(port: try await TestServers.freePort())
        let log = LogRecorder()
        var settings = GatewayConfiguration.TelemetrySettings()
        settings.exportInterval = .seconds(60)  // nothing is due by time: only full batches and shutdown
        settings.otelEnvironment = [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(receiver.port)/",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret%20value,x-tenant=t1",
            "OTEL_SERVICE_NAME": "edge-bff", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
            "OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4",
        ]
        let made = try #require(try GatewayTracing.make(settings, logger: log.logger))
        let tracer = try #require(made.tracer as? OTLPTracer)
        try await TestServers.withRunning([receiver.application()], ports: [receiver.port]) {
            try await TestServers.withRunning([OTLPExporterService(exporter: tracer.exporter)], ports: []) {
                for index in 0..<25 { tracer.startSpan("s\(index)", context: .topLevel, ofKind: .internal).end() }
                #expect(tracer.exporter.queued == 10, "the queue holds 10, the other 15 are dropped")
                // A full batch is waiting: the queue goes at once, in requests of at most 4.
                _ = try await eventually(attempts: 200, until: { $0 == 10 }) { receiver.spans.count }
                #expect(receiver.batches.map(\.count) == [4, 4, 2])
                // Less than a batch waits (the delay is a minute)...
                for index in 10..<12 { tracer.startSpan("s\(index)", context: .topLevel, ofKind: .internal).end() }
                try await Task.sleep(for: .milliseconds(300))
                #expect(receiver.spans.count == 10 && tracer.exporter.queued == 2)
            }
            // ...until shutdown.
            #expect(receiver.batches.map(\.count) == [4, 4, 2, 2], "the rest was sent at shutdown")
        }
        #expect(receiver.spans.map(\.name) == (0..<12).map { "s\($0)" })
        for headers in receiver.headers {
            #expect(headers[HTTPField.Name("x-api-key")!] == "s3cret value")
            #expect(headers[HTTPField.Name("x-tenant")!] == "t1")
            #expect(headers[.contentType] == "application/x-protobuf")
        }
        let resource = try #require(receiver.resources.first)
        #expect(resource["service.name"] == "edge-bff")
        #expect(resource["deployment.environment"] == "test")
        let dropped = log.all.filter { $0.message.contains("Spans dropped") }
        #expect(dropped.count == 1 && dropped.first?.metadata["bff.dropped_spans"] == "15", "\(log.all)")
        #expect(!log.all.contains { "\($0.message) \($0.metadata)".contains("s3cret") })
    }

    /// A collector that is not there: the failure is logged once (not per batch, and without the
    /// headers), the spans are dropped, and the exporter keeps running and stops on time.
    @Test func aMissingCollectorIsLoggedOnceAndCostsNothingElse() async throws {
        let port = try await TestServers.freePort()
        let log = LogRecorder()
        let tracer = try Self.tracer(
            endpoint: "http://127.0.0.1:\(port)", exportInterval: .milliseconds(20),
            environment: ["OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20s3cret"], logger: log.logger)
        #expect(tracer.exporter.settings.url == "http://127.0.0.1:\(port)/v1/traces")
        let started = ContinuousClock.now
        try await TestServers.withRunning([OTLPExporterService(exporter: tracer.exporter)], ports: []) {
            for round in 0..<5 {
                tracer.startSpan("r\(round)", context: .topLevel, ofKind: .internal).end()
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        let failures = log.all.filter { $0.message == "OTLP export failed" }
        #expect(failures.count == 1, "\(log.all.map(\.message))")
        #expect(tracer.exporter.queued == 0)
        #expect(!log.all.contains { "\($0.message) \($0.metadata)".contains("s3cret") })
    }

    /// A collector that accepts and never answers: exports time out (logged), and shutdown sends
    /// the rest within 3 s, not a whole export timeout.
    @Test func aStalledCollectorHoldsNeitherExportsNorShutdown() async throws {
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { _ in MultiThreadedEventLoopGroup.singleton.any().makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        let log = LogRecorder()
        let tracer = try Self.tracer(
            endpoint: "http://127.0.0.1:\(silent.localAddress?.port ?? 0)", exportInterval: .seconds(60),
            environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "30000"], logger: log.logger)
        let started = ContinuousClock.now
        try await TestServers.withRunning([OTLPExporterService(exporter: tracer.exporter)], ports: []) {
            tracer.startSpan("left", context: .topLevel, ofKind: .internal).end()
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(2900) && elapsed < .seconds(8), "shutdown took \(elapsed)")
        #expect(log.all.contains { $0.message == "OTLP export failed" }, "\(log.all.map(\.message))")
    }

    /// A collector that answers at once but drips its body: the export is cut off at its
    /// timeout (head and body), logged, and stopping does not wait for the drip.
    @Test func aCollectorThatDripsItsBodyIsCutOffAtTheTimeout() async throws {
        let dripping = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Dripper()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { dripping.close(promise: nil) }
        let log = LogRecorder()
        let tracer = try Self.tracer(
            endpoint: "http://127.0.0.1:\(dripping.localAddress?.port ?? 0)", exportInterval: .milliseconds(20),
            environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "1000"], logger: log.logger)
        let stopped = try await TestServers.withRunning([OTLPExporterService(exporter: tracer.exporter)], ports: []) {
            tracer.startSpan("first", context: .topLevel, ofKind: .internal).end()
            let failed = try await eventually(attempts: 250, until: { $0 }) {
                log.all.contains { $0.message == "OTLP export failed" && $0.metadata["error.type"] == "timeout" }
            }
            #expect(failed, "\(log.all.map { "\($0.message) \($0.metadata)" })")
            // Another export is dripping when the exporter is stopped.
            tracer.startSpan("second", context: .topLevel, ofKind: .internal).end()
            try await Task.sleep(for: .milliseconds(300))
            return ContinuousClock.now
        }
        #expect(ContinuousClock.now - stopped < .seconds(2), "stopping waited \(ContinuousClock.now - stopped)")
    }

    /// The gateway's listener service stops the exporter only after the listener has drained: a
    /// span that ends while the last requests finish is still sent.
    @Test func spansOfTheLastRequestsAreSentAtShutdown() async throws {
        let receiver = Receiver(port: try await TestServers.freePort())
        var settings = GatewayConfiguration.TelemetrySettings()
        settings.endpoint = "http://127.0.0.1:\(receiver.port)"
        settings.exportInterval = .seconds(60)
        let made = try #require(try GatewayTracing.make(settings, logger: quiet))
        let tracer = try #require(made.tracer as? OTLPTracer)
        try await TestServers.withRunning([receiver.application()], ports: [receiver.port]) {
            try await TestServers.withRunning(
                [ListenerWithSpanExporter(listener: DrainingListener(tracer: tracer), exporter: made.exporter)],
                ports: []
            ) {}
        }
        #expect(receiver.spans.map(\.name) == ["drained request"])
    }

    /// `OTEL_*` values that make no sense are ignored with a warning naming the variable (never
    /// its value); `OTEL_SDK_DISABLED` and `OTEL_TRACES_EXPORTER=none` turn tracing off; the
    /// sampler variables override `telemetry.sampleRatio`.
    @Test func otelVariables() throws {
        let log = LogRecorder()
        var settings = GatewayConfiguration.TelemetrySettings()
        settings.endpoint = "http://127.0.0.1:4318"
        settings.sampleRatio = 0.5
        settings.otelEnvironment = [
            "OTEL_BSP_MAX_QUEUE_SIZE": "-3", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
            "OTEL_EXPORTER_OTLP_HEADERS": "no-equals-sign-s3cret", "OTEL_TRACES_SAMPLER": "sometimes",
        ]
        let made = try #require(try GatewayTracing.make(settings, logger: log.logger))
        let tracer = try #require(made.tracer as? OTLPTracer)
        #expect(tracer.exporter.settings.maxQueueSize == 2048 && tracer.exporter.settings.timeout == .seconds(10))
        #expect(tracer.exporter.settings.headers.isEmpty)
        #expect(tracer.sampling == TraceSampling(root: .ratio(0.5), followParent: true))
        let named = Set(log.all.compactMap { $0.metadata["bff.variable"] })
        #expect(
            named == [
                "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_HEADERS",
                "OTEL_TRACES_SAMPLER",
            ])
        #expect(!log.all.contains { "\($0.message) \($0.metadata)".contains("s3cret") })

        settings.otelEnvironment = ["OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"]
        let ratio = try #require(try GatewayTracing.make(settings, logger: log.logger)?.tracer as? OTLPTracer)
        #expect(ratio.sampling == TraceSampling(root: .ratio(0.1), followParent: false))
        settings.otelEnvironment = ["OTEL_SDK_DISABLED": "true"]
        #expect(try GatewayTracing.make(settings, logger: log.logger) == nil)
        settings.otelEnvironment = ["OTEL_TRACES_EXPORTER": "none"]
        #expect(try GatewayTracing.make(settings, logger: log.logger) == nil)
        settings.endpoint = nil
        settings.otelEnvironment = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://collector"]
        #expect(throws: ProblemList.self) { try GatewayTracing.make(settings, logger: log.logger) }
    }

    var quiet: Logger { TestEnvironment.quietLogger }

    /// The gateway's tracer for `endpoint`, made as `bff serve` makes it.
    static func tracer(
        endpoint: String, exportInterval: Duration, environment: [String: String], logger: Logger
    ) throws -> OTLPTracer {
        var settings = GatewayConfiguration.TelemetrySettings()
        settings.endpoint = endpoint
        settings.exportInterval = exportInterval
        settings.otelEnvironment = environment
        let made = try #require(try GatewayTracing.make(settings, logger: logger))
        return try #require(made.tracer as? OTLPTracer)
    }
}

private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

/// A listener that, once asked to shut down, takes 300 ms to finish its last request (which ends
/// a span).
private struct DrainingListener: Service {
    let tracer: OTLPTracer
    func run() async throws {
        try? await gracefulShutdown()
        try await Task.sleep(for: .milliseconds(300))
        tracer.startSpan("drained request", context: .topLevel, ofKind: .server).end()
    }
}

/// A collector that answers at once and then sends one body byte every 200 ms, forever.
private final class Dripper: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var dripping: RepeatedTask?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard dripping == nil else { return }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n"
        context.writeAndFlush(NIOAny(ByteBuffer(string: head)), promise: nil)
        let channel = context.channel
        dripping = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(200), delay: .milliseconds(200)) {
            _ in
            channel.writeAndFlush(ByteBuffer(string: "1\r\nx\r\n"), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        dripping?.cancel()
        context.fireChannelInactive()
    }
}
