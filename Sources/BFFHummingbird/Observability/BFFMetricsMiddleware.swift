import Hummingbird

/// Counts every request the router answers (`bff_http_requests_total`,
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
            bff.metrics.request(
                route: context.endpointPath ?? "unmatched", method: request.method.rawValue,
                status: response.status.code, duration: .now - started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            bff.metrics.request(
                route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: status,
                duration: .now - started)
            throw error
        }
    }
}
