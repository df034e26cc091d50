import Hummingbird

/// Counts (and, with an access logger, logs) every request the router answers (`bff_http_requests_total`,
/// `bff_http_request_duration_seconds`), labelled with the matched route's pattern (never the
/// request path; `unmatched` when no route matched: static files, 404s). API calls are skipped
/// here: every API pipeline reports them itself (``BFF/report(_:)``), whichever adapter served them.
/// Add it first, so it sees every request and every error.
public struct BFFMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let bff: BFF

    /// Counts `bff`'s requests into `bff.metrics`.
    public init(bff: BFF) { self.bff = bff }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        if bff.planner.isAPIPath(request.uri.path) { return try await next(request, context) }
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, bytes: response.body.contentLength, since: started)
            return response
        } catch {
            record(
                request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, bytes: nil,
                since: started)
            throw error
        }
    }

    func record(
        _ request: Request, _ context: Context, status: Int, bytes: Int?, since started: ContinuousClock.Instant
    ) {
        let route = context.endpointPath ?? "unmatched"
        let duration = ContinuousClock.now - started
        bff.metrics.request(route: route, method: request.method.rawValue, status: status, duration: duration)
        bff.logAccess(
            method: request.method.rawValue, route: route, status: status, duration: duration, upstreamStatus: nil,
            bytes: bytes, sessionLogoutID: nil)
    }
}
