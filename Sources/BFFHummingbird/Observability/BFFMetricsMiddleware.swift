import Hummingbird
import Tracing

/// Observes every request the router answers: counts it (`bff_http_requests_total`,
/// `bff_http_request_duration_seconds`), writes its access-log line (with an access logger) and,
/// with a tracer, runs it in a server span (so the identity-provider calls it makes become child
/// spans). Labelled with the matched route's pattern (never the request path; `unmatched` when no
/// route matched: static files, 404s). API calls are skipped here: every API pipeline observes
/// them itself (``BFF/report(_:)``), whichever adapter served them. Add it first.
public struct BFFMetricsMiddleware<Context: BFFRequestContext>: RouterMiddleware {
    let bff: BFF

    /// Observes `bff`'s requests.
    public init(bff: BFF) { self.bff = bff }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        if bff.planner.isAPIPath(request.uri.path) { return try await next(request, context) }
        return try await bff.withServerSpan(request, remoteAddress: context.bff.remoteAddress) { span in
            try await observe(request, context, span: span, next: next)
        }
    }

    func observe(
        _ request: Request, _ context: Context, span: (any Span)?, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(
                request, context, status: response.status.code, bytes: response.body.contentLength, since: started,
                span: span)
            return response
        } catch {
            record(
                request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, bytes: nil,
                since: started, span: span)
            throw error
        }
    }

    func record(
        _ request: Request, _ context: Context, status: Int, bytes: Int?, since started: ContinuousClock.Instant,
        span: (any Span)?
    ) {
        let route = BFF.routeLabel(context.endpointPath)
        let duration = ContinuousClock.now - started
        bff.metrics.request(route: route, method: request.method.rawValue, status: status, duration: duration)
        bff.logAccess(
            method: request.method.rawValue, route: route, status: status, duration: duration, upstreamStatus: nil,
            bytes: bytes, sessionLogoutID: nil)
        if let span {
            span.operationName = "HTTP " + request.method.rawValue + " " + route
            span.attributes["http.route"] = route
            span.recordStatus(status)
        }
    }
}
