import BFFCore
import BFFTesting
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

/// OpenTelemetry traces over OTLP/HTTP, received and decoded here: the span tree of a login
/// callback and of a proxied call on both API adapters, the trace id the upstream received, and
/// no secret in any span.
@Suite("Traces")
struct TracingTests {
    let harness = RemoteAPITests()

    /// One decoded span.
    struct Span: CustomStringConvertible {
        var traceID: [UInt8] = []
        var spanID: [UInt8] = []
        var parentSpanID: [UInt8] = []
        var name = ""
        var kind = 0
        var attributes: [String: String] = [:]
        /// Start and end, in nanoseconds since 1970.
        var start: UInt64 = 0
        var end: UInt64 = 0
        /// `Status.code`: 0 unset, 1 ok, 2 error.
        var statusCode = 0
        /// The events' names.
        var events: [String] = []
        var traceState = ""
        var duration: Duration { .nanoseconds(Int64(end) - Int64(start)) }
        var description: String { "\(name) kind \(kind) \(hex(spanID)) ← \(hex(parentSpanID)) \(attributes)" }
    }

    /// An OTLP/HTTP receiver on 127.0.0.1: `POST /v1/traces` with protobuf bodies.
    final class Receiver: Sendable {
        let port: Int
        private let bodies = Mutex<[[UInt8]]>([])
        private let heads = Mutex<[HTTPFields]>([])
        init(port: Int) { self.port = port }

        var spans: [Span] { bodies.withLock { $0 }.flatMap { Self.decodeRequest($0[...]) } }
        /// Each export request's spans.
        var batches: [[Span]] { bodies.withLock { $0 }.map { Self.decodeRequest($0[...]) } }
        /// Each export request's headers.
        var headers: [HTTPFields] { heads.withLock { $0 } }
        /// The resource attributes of every request.
        var resources: [[String: String]] {
            bodies.withLock { $0 }.flatMap { body in
                Self.messages(body[...], field: 1).flatMap { Self.messages($0, field: 1) }.map { resource in
                    Self.decodeSpan(resource.isEmpty ? [] : Self.reframe(resource, as: 9)).attributes
                }
            }
        }

        /// A `Resource`'s attributes (field 1) re-tagged as a span's (field 9), to decode them alike.
        static func reframe(_ message: ArraySlice<UInt8>, as field: UInt64) -> ArraySlice<UInt8> {
            var writer: [UInt8] = []
            for keyValue in messages(message, field: 1) {
                writer.append(UInt8(field << 3 | 2))
                var length = UInt64(keyValue.count)
                while length >= 0x80 {
                    writer.append(UInt8(length & 0x7F) | 0x80)
                    length >>= 7
                }
                writer.append(UInt8(length))
                writer.append(contentsOf: keyValue)
            }
            return writer[...]
        }

        func application() -> some ApplicationProtocol {
            let router = Router()
            router.post("/v1/traces") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 8 << 20)
                self.heads.withLock { $0.append(request.headers) }
                self.bodies.withLock { $0.append(Array(body.readableBytesView)) }
                return Response(status: .ok, headers: [.contentType: "application/x-protobuf"])
            }
            return Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                logger: TestEnvironment.quietLogger)
        }

        // Protobuf wire format, the few messages of ExportTraceServiceRequest we read.
        enum Value {
            case varint(UInt64)
            case bytes(ArraySlice<UInt8>)
            case fixed
            case fixed64(UInt64)
        }

        static func fields(_ bytes: ArraySlice<UInt8>) -> [(Int, Value)] {
            var rest = bytes
            var result: [(Int, Value)] = []
            func varint() -> UInt64? {
                var value: UInt64 = 0
                var shift: UInt64 = 0
                while let byte = rest.popFirst() {
                    value |= UInt64(byte & 0x7F) << shift
                    if byte & 0x80 == 0 { return value }
                    shift += 7
                    if shift > 63 { return nil }
                }
                return nil
            }
            while !rest.isEmpty, let key = varint() {
                let field = Int(key >> 3)
                switch key & 7 {
                case 0:
                    guard let value = varint() else { return result }
                    result.append((field, .varint(value)))
                case 1:
                    guard rest.count >= 8 else { return result }
                    let value = rest.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    rest = rest.dropFirst(8)
                    result.append((field, .fixed64(value)))
                case 2:
                    guard let length = varint(), rest.count >= Int(length) else { return result }
                    result.append((field, .bytes(rest.prefix(Int(length)))))
                    rest = rest.dropFirst(Int(length))
                case 5:
                    guard rest.count >= 4 else { return result }
                    rest = rest.dropFirst(4)
                    result.append((field, .fixed))
                default: return result
                }
            }
            return result
        }

        static func messages(_ bytes: ArraySlice<UInt8>, field: Int) -> [ArraySlice<UInt8>] {
            fields(bytes).compactMap { number, value in
                if number == field, case .bytes(let body) = value { return body }
                return nil
            }
        }

        static func decodeRequest(_ bytes: ArraySlice<UInt8>) -> [Span] {
            // ExportTraceServiceRequest.resource_spans(1) → ResourceSpans.scope_spans(2) → ScopeSpans.spans(2)
            messages(bytes, field: 1).flatMap { messages($0, field: 2) }.flatMap { messages($0, field: 2) }.map(
                decodeSpan)
        }

        static func decodeSpan(_ bytes: ArraySlice<UInt8>) -> Span {
            var span = Span()
            for (field, value) in fields(bytes) {
                switch (field, value) {
                case (1, .bytes(let id)): span.traceID = Array(id)
                case (2, .bytes(let id)): span.spanID = Array(id)
                case (4, .bytes(let id)): span.parentSpanID = Array(id)
                case (3, .bytes(let state)): span.traceState = String(decoding: state, as: UTF8.self)
                case (5, .bytes(let name)): span.name = String(decoding: name, as: UTF8.self)
                case (11, .bytes(let event)):
                    for case (2, .bytes(let name)) in fields(event) {
                        span.events.append(String(decoding: name, as: UTF8.self))
                    }
                case (15, .bytes(let status)):
                    for case (3, .varint(let code)) in fields(status) { span.statusCode = Int(code) }
                case (6, .varint(let kind)): span.kind = Int(kind)
                case (7, .fixed64(let time)): span.start = time
                case (8, .fixed64(let time)): span.end = time
                case (9, .bytes(let keyValue)):
                    var key = ""
                    var text = ""
                    for (number, part) in fields(keyValue) {
                        if number == 1, case .bytes(let name) = part { key = String(decoding: name, as: UTF8.self) }
                        if number == 2, case .bytes(let anyValue) = part {
                            for (kind, inner) in fields(anyValue) {
                                switch (kind, inner) {
                                case (1, .bytes(let string)): text = String(decoding: string, as: UTF8.self)
                                case (2, .varint(let flag)): text = flag == 0 ? "false" : "true"
                                case (3, .varint(let number)): text = String(Int64(bitPattern: number))
                                case (4, .fixed64(let bits)): text = String(Double(bitPattern: bits))
                                default: break
                                }
                            }
                        }
                    }
                    span.attributes[key] = text
                default: break
                }
            }
            return span
        }
    }

    static let server = 2
    static let client = 3

    @Test(arguments: [true, false])
    func loginAndProxiedCallsAreTracedWithoutSecrets(eventLoop: Bool) async throws {
        let receiver = Receiver(port: try await TestServers.freePort())
        try await harness.withProxy(
            fastPath: eventLoop, extraServices: [receiver.application()], extraPorts: [receiver.port],
            otlpEndpoint: "http://127.0.0.1:\(receiver.port)"
        ) { env, browser, _ in
            try await env.login(browser)
            let diagnostics = try await browser.get(env.origin + "/bff/diagnostics", headers: env.csrf)
            let accessToken = try #require(TestEnvironment.extract(#""accessToken":""#, from: diagnostics.body))
            let refreshToken = try #require(TestEnvironment.extract(#""refreshToken":""#, from: diagnostics.body))
            // A proxied call; an untrusted client's traceparent is not followed.
            let forged = "00-" + String(repeating: "ab", count: 16) + "-" + String(repeating: "cd", count: 8) + "-01"
            let page = try await browser.get(
                env.origin + "/api/echo/items/7?q=hidden",
                headers: env.csrf + [("traceparent", forged), ("tracestate", "evil=sampled")])
            let seen = try harness.echoed(page)
            #expect(seen.values("tracestate").isEmpty, "an untrusted caller's tracestate is not passed on")
            let traceparent = try #require(seen.values("traceparent").first, "the upstream got a traceparent")
            #expect(seen.values("traceparent").count == 1)
            #expect(traceparent != forged)
            let parts = traceparent.split(separator: "-").map(String.init)
            try #require(parts.count == 4)

            // Spans arrive in batches: wait for every span asserted on below.
            let spans = try await eventually(
                attempts: 400,
                until: { spans in
                    ["upstream GET", "IdP POST", "HTTP GET /api/echo", "HTTP GET /signin-oidc", "session_store insert"]
                        .allSatisfy { name in spans.contains { $0.name == name } }
                }
            ) { receiver.spans }
            // The proxied call: server span → upstream client span, whose ids the upstream received.
            let call = try #require(spans.first { $0.name == "HTTP GET /api/echo" }, "\(spans)")
            #expect(call.kind == Self.server)
            #expect(call.attributes["http.route"] == "/api/echo")
            #expect(call.attributes["http.response.status_code"] == "200")
            #expect(call.parentSpanID.isEmpty, "a new trace: the client is not a trusted proxy")
            let upstream = try #require(spans.first { $0.name == "upstream GET" && $0.parentSpanID == call.spanID })
            #expect(upstream.kind == Self.client)
            #expect(upstream.traceID == call.traceID)
            #expect(parts[1] == hex(call.traceID), "the upstream received the call's trace id")
            #expect(parts[2] == hex(upstream.spanID), "and the upstream span as its parent")
            // The login callback: server span with the token endpoint call as a child.
            let callback = try #require(spans.first { $0.name == "HTTP GET /signin-oidc" }, "\(spans.map(\.name))")
            #expect(callback.kind == Self.server)
            let tokenCall = spans.first { $0.name == "IdP POST" && $0.parentSpanID == callback.spanID }
            #expect(tokenCall?.traceID == callback.traceID, "the code exchange is a child of the callback")
            #expect(tokenCall?.kind == Self.client)
            // The new session's write: a store span under the callback, named by its operation only.
            let insert = spans.first { $0.name == "session_store insert" && $0.parentSpanID == callback.spanID }
            #expect(insert?.kind == Self.client, "\(spans.map(\.name))")
            #expect(insert?.attributes["db.operation.name"] == "insert")
            // No secret and no request path anywhere in the spans.
            let text = spans.map(\.description).joined(separator: "\n")
            let cookieValues = WebSocketTests.cookieHeader(browser).split(separator: ";").compactMap {
                $0.split(separator: "=", maxSplits: 1).last.map(String.init)
            }
            for secret in [accessToken, refreshToken, "items/7", "q=hidden", "code="] + cookieValues {
                #expect(!text.contains(secret), "a span contains \(secret.prefix(10))…")
            }
        }
    }

    /// A call that must first refresh its token: the refresh (work the event-loop handler suspends
    /// for) is a child of the call's span on both adapters, not a trace of its own.
    @Test(arguments: [true, false])
    func aRefreshIsAChildOfTheCallThatNeededIt(eventLoop: Bool) async throws {
        let receiver = Receiver(port: try await TestServers.freePort())
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await harness.withProxy(
            clock: clock, fastPath: eventLoop, extraServices: [receiver.application()], extraPorts: [receiver.port],
            otlpEndpoint: "http://127.0.0.1:\(receiver.port)"
        ) { env, browser, _ in
            try await env.login(browser)
            clock.advance(by: 241)  // within refreshBeforeExpiry
            #expect(try await browser.get(env.origin + "/api/echo/r", headers: env.csrf).status == 200)
            let spans = try await eventually(until: { $0.contains { $0.name == "HTTP GET /api/echo" } }) {
                receiver.spans
            }
            let call = try #require(spans.first { $0.name == "HTTP GET /api/echo" })
            let refresh = spans.filter { $0.name == "IdP POST" && $0.traceID == call.traceID }
            #expect(refresh.count == 1, "one token request in the call's trace: \(spans.map(\.name))")
            #expect(refresh.first?.parentSpanID == call.spanID)
        }
    }

    /// The server span and the upstream call's client span end with the response's body, not at
    /// its head (on both adapters).
    @Test(arguments: [true, false])
    func spansEndWithTheBody(eventLoop: Bool) async throws {
        let receiver = Receiver(port: try await TestServers.freePort())
        try await harness.withProxy(
            fastPath: eventLoop, extraServices: [receiver.application()], extraPorts: [receiver.port],
            otlpEndpoint: "http://127.0.0.1:\(receiver.port)"
        ) { env, browser, _ in
            let page = try await browser.get(env.origin + "/api/bulk/drip/800", headers: env.csrf)
            #expect(page.status == 200 && page.body.utf8.count == 4000)
            let spans = try await eventually(until: { spans in
                spans.contains { $0.name == "HTTP GET /api/bulk" } && spans.contains { $0.name == "upstream GET" }
            }) { receiver.spans }
            let server = try #require(spans.first { $0.name == "HTTP GET /api/bulk" })
            let upstream = try #require(spans.first { $0.name == "upstream GET" && $0.traceID == server.traceID })
            #expect(server.duration >= .milliseconds(790), "\(server.duration)")
            #expect(upstream.duration >= .milliseconds(790), "\(upstream.duration)")
            #expect(upstream.end <= server.end)
        }
    }

    /// From a trusted proxy, the caller's trace is continued (on both adapters).
    @Test(arguments: [true, false])
    func aTrustedProxysTraceparentIsContinued(eventLoop: Bool) async throws {
        let receiver = Receiver(port: try await TestServers.freePort())
        try await harness.withProxy(
            fastPath: eventLoop, extraServices: [receiver.application()], extraPorts: [receiver.port],
            otlpEndpoint: "http://127.0.0.1:\(receiver.port)",
            configure: { settings in settings.server.trustedProxies = ["127.0.0.1/32"] }
        ) { env, browser, _ in
            let traceID = String(repeating: "ab", count: 16)
            let parent = String(repeating: "cd", count: 8)
            let page = try await browser.get(
                env.origin + "/api/public/x",
                headers: env.csrf + [("traceparent", "00-\(traceID)-\(parent)-01"), ("tracestate", "vendor=x")])
            let traceparent = try #require(try harness.echoed(page).values("traceparent").first)
            #expect(try harness.echoed(page).values("tracestate") == ["vendor=x"], "a trusted caller's is")
            // A trusted caller's tracestate that is dropped as malformed is not passed on either.
            let long = try await browser.get(
                env.origin + "/api/public/x",
                headers: env.csrf + [
                    ("traceparent", "00-\(traceID)-\(parent)-01"), ("tracestate", String(repeating: "v", count: 600)),
                ])
            #expect(try harness.echoed(long).values("tracestate").isEmpty)
            #expect(traceparent.hasPrefix("00-\(traceID)-"), "the upstream continues the caller's trace")
            #expect(!traceparent.contains(parent), "with the gateway's own span as parent")
            let spans = try await eventually(until: { $0.contains { $0.name == "HTTP GET /api/public" } }) {
                receiver.spans
            }
            let call = try #require(spans.first { $0.name == "HTTP GET /api/public" })
            #expect(hex(call.traceID) == traceID)
            #expect(hex(call.parentSpanID) == parent)
        }
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined()
}
