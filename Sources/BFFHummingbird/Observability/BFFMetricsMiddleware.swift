import Hummingbird
import Tracing

/// Observes every request the router answers: counts it (`bff_http_requests_total`,
/// `bff_http_request_duration_seconds`), writes its access-log line (with an access logger) and,
/// with a tracer, runs it in a server span (so the identity-provider calls it makes become child
/// spans). Labelled with the matched route's pattern (never the request path; `static` for static
/// files, `unmatched` when no route matched). API calls are skipped here: every API pipeline observes
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
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            label(span, request, context, status: status)
            Self.record(
                bff, method: request.method.rawValue, route: BFF.routeLabel(context.endpointPath), status: status,
                bytes: nil, complete: true, since: started)
            throw error
        }
        label(span, request, context, status: response.status.code)
        // Counted and logged once the body has ended (a download's time is part of the request's).
        let method = request.method.rawValue
        let route = BFF.routeLabel(context.endpointPath)
        let status = response.status.code
        let bff = self.bff
        return response.observingEnd { bytes, complete, headWritten in
            Self.record(
                bff, method: method, route: route, status: headWritten ? status : 499, bytes: bytes,
                complete: complete, since: started)
        }
    }

    func label(_ span: (any Span)?, _ request: Request, _ context: Context, status: Int) {
        guard let span else { return }
        let route = BFF.routeLabel(context.endpointPath)
        span.recordHTTP {
            $0.route = route
            $0.routeInName = true
            $0.status = status
        }
    }

    static func record(
        _ bff: BFF, method: String, route: String, status: Int, bytes: Int?, complete: Bool,
        since started: ContinuousClock.Instant
    ) {
        let duration = ContinuousClock.now - started
        bff.metrics.request(route: route, method: method, status: status, duration: duration)
        bff.logAccess(
            method: method, route: route, status: status, duration: duration, upstreamStatus: nil, bytes: bytes,
            complete: complete, sessionLogoutID: nil)
    }
}
