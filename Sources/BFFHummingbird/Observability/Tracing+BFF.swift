import BFFCore
import BFFOIDC
import HTTPTypes
import Hummingbird
import NIOHTTP1
import Tracing

// Traces (issue 12): one server span per request, a client span per upstream call and per call to
// the identity provider, W3C `traceparent` sent to both. Spans carry methods, configured routes,
// statuses and error kinds — never a request path, query, token, code, cookie or session id. An
// incoming `traceparent` is honoured only from `server.trustedProxies`.

/// Reads trace headers from NIO's request headers.
struct NIOHeadersExtractor: Extractor {
    func extract(key: String, from carrier: HTTPHeaders) -> String? { carrier.first(name: key) }
}

/// Writes trace headers into NIO's request headers, replacing the caller's; an empty value
/// removes the header (a `tracestate` the gateway did not continue is not passed on).
struct NIOHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        if value.isEmpty {
            carrier.remove(name: key)
        } else {
            carrier.replaceOrAdd(name: key, value: value)
        }
    }
}

/// Reads trace headers from swift-http-types fields.
struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from carrier: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { carrier[$0] }
    }
}

/// Writes trace headers into swift-http-types fields (an empty value removes the field).
struct HTTPFieldsInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPFields) {
        if let name = HTTPField.Name(key) { carrier[name] = value.isEmpty ? nil : value }
    }
}

/// Writes trace headers into an identity-provider request's header list.
struct OIDCHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
        carrier.removeAll { $0.0.lowercased() == key.lowercased() }
        if !value.isEmpty { carrier.append((key, value)) }
    }
}

extension APICallPlanner {
    /// The context a request's server span starts from: the caller's `traceparent` when the peer is
    /// a trusted proxy, else a new trace.
    func incomingContext<Carrier, Extract: Extractor>(
        remoteAddress: String?, carrier: Carrier, using extractor: Extract, tracer: any Tracer
    ) -> ServiceContext where Extract.Carrier == Carrier {
        var context = ServiceContext.topLevel
        if isTrustedProxy(remoteAddress) { tracer.extract(carrier, into: &context, using: extractor) }
        return context
    }
}

extension BFF {
    /// Runs `body` in the server span of a request the router handles (or directly, without a
    /// tracer): the parent from a trusted proxy's `traceparent`, the method recorded. The span
    /// ends when the response's body has ended (or when `body` throws), not at its head.
    func withServerSpan(
        _ request: Request, remoteAddress: String?, _ body: ((any Span)?) async throws -> Response
    ) async throws -> Response {
        guard let tracer else { return try await body(nil) }
        let parent = planner.incomingContext(
            remoteAddress: remoteAddress, carrier: request.headers, using: HTTPFieldsExtractor(), tracer: tracer)
        let span = startSpan(tracer, "HTTP " + request.method.rawValue, context: parent, ofKind: .server)
        span.recordHTTP { $0.method = request.method.rawValue }
        do {
            let response = try await ServiceContext.withValue(span.context) { try await body(span) }
            return response.observingEnd { _, complete, headWritten in
                span.recordHTTP {
                    if !complete { $0.incomplete = true }
                    if !headWritten { $0.clientGone = true }
                }
                span.end()
            }
        } catch {
            span.recordError(error)
            span.end()
            throw error
        }
    }
}

/// Starts a span with the tracer's own `startSpan` — the existential opened, without the
/// `startAnySpan` layers in between (each an autoclosure and a generic hop, twice per API call).
/// The call site is passed on, as `startAnySpan` would.
func startSpan(
    _ tracer: any Tracer, _ name: String, context: ServiceContext, ofKind kind: SpanKind,
    function: String = #function, file fileID: String = #fileID, line: UInt = #line
) -> any Span {
    startOpened(tracer, name, context: context, kind: kind, function: function, file: fileID, line: line)
}

private func startOpened<T: Tracer>(
    _ tracer: T, _ name: String, context: ServiceContext, kind: SpanKind, function: String, file fileID: String,
    line: UInt
) -> any Span {
    tracer.startSpan(
        name, context: context, ofKind: kind, at: DefaultTracerClock.now, function: function, file: fileID, line: line)
}

/// Calls to the identity provider (discovery, keys, token endpoint, revocation, userinfo) as
/// client spans of whatever span is current, with `traceparent` sent along.
struct TracingOIDCHTTPClient: OIDCHTTPClient {
    let base: any OIDCHTTPClient
    let tracer: any Tracer

    func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse {
        // The URL without its query (no secrets are sent in IdP URLs, but no query is recorded).
        let url = String(request.url.prefix { $0 != "?" })
        return try await tracer.withAnySpan("IdP " + request.method, ofKind: .client) { span in
            span.recordHTTP { $0.method = request.method }
            span.attributes["url.full"] = url
            var request = request
            tracer.inject(span.context, into: &request.headers, using: OIDCHeadersInjector())
            let response = try await base.send(request, timeout: timeout)
            span.recordStatus(response.status)
            return response
        }
    }
}
