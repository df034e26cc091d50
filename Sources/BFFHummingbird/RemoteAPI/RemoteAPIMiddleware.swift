import BFFCore
import BFFForwarder
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Tracing

/// The Hummingbird adapter of the API pipeline, for applications that do not install the
/// gateway's channel handler: asks the ``APICallPlanner`` and forwards through `transport`.
/// Requests under no API route pass through.
public struct RemoteAPIMiddleware<Context: BFFRequestContext>: RouterMiddleware {
    let bff: BFF
    let transport: any UpstreamTransport

    /// Creates the middleware.
    public init(bff: BFF, transport: any UpstreamTransport) {
        self.bff = bff
        self.transport = transport
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard bff.tracer != nil, bff.planner.isAPIPath(request.uri.path) else {
            return try await handle(request, context: context, span: nil, next: next)
        }
        return try await bff.withServerSpan(request, remoteAddress: context.bff.remoteAddress) { span in
            try await handle(request, context: context, span: span, next: next)
        }
    }

    func handle(
        _ request: Request, context: Context, span: (any Span)?, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        var decision = bff.planner.plan(APICallRequest(request, remoteAddress: context.bff.remoteAddress))
        if case .suspend(let work) = decision { decision = await work.resume() }
        let response: Response
        let api: String
        var upstreamStatus: Int?
        var upstreamStarted: ContinuousClock.Instant?
        var sessionLogoutID: String?
        switch decision {
        case .pass:
            return try await next(request, context)
        case .suspend:
            response = BFFResponses.problem(.internalError)  // resume() never suspends again
            api = ""
        case .refuse(let refusal):
            response = BFFResponses.problem(refusal.problem, cookies: refusal.cookies)
            api = refusal.api ?? ""
        case .forward(let plan):
            api = plan.api
            sessionLogoutID = plan.sessionLogoutID
            if plan.isWebSocket {
                // Upgrades are decided before routing: a handshake that gets here was not upgraded.
                response = BFFResponses.problem(.upgradeRequired)
            } else {
                let forwardStarted = ContinuousClock.now
                (response, upstreamStatus) = await forward(
                    request, plan: plan, eventLoop: context.bff.eventLoop, logger: context.logger)
                if upstreamStatus != nil { upstreamStarted = forwardStarted }
            }
        }
        if let span {
            span.recordHTTP {
                $0.route = api
                $0.routeInName = true
                $0.status = response.status.code
            }
        }
        // Reported once the body has ended (or was cut short), like on the event-loop path.
        let event = APICallEvent(
            pipeline: .router, api: api, method: request.method.rawValue, target: request.uri.description,
            status: response.status.code, upstreamStatus: upstreamStatus, duration: .zero, upstreamDuration: nil,
            responseBytes: nil, sessionLogoutID: sessionLogoutID)
        let bff = self.bff
        let forwarded = upstreamStarted
        return response.observingEnd { bytes, complete, headWritten in
            var event = event
            if !headWritten { event.status = 499 }  // the client left before the head, as on the event loop
            let now = ContinuousClock.now
            event.duration = now - started
            event.upstreamDuration = forwarded.map { now - $0 }
            event.responseBytes = bytes
            event.complete = complete
            bff.report(event)
        }
    }

    /// The response, and the upstream's status if it answered.
    func forward(
        _ request: Request, plan: APICallPlan, eventLoop: (any EventLoop)?, logger: Logger, retried: Bool = false
    ) async -> (Response, Int?) {
        var headers = HTTPFields()
        headers.reserveCapacity(plan.forwardedFields.count + plan.gatewayFields.count)
        for field in plan.forwardedFields {
            if let name = HTTPField.Name(field.name) { headers.append(HTTPField(name: name, value: field.value)) }
        }
        for field in plan.gatewayFields {
            if let name = HTTPField.Name(field.name) { headers[name] = field.value }
        }
        let contentLength: Int? =
            switch plan.body {
            case .length(let length): length
            case .none, .chunked: nil
            }
        // The upstream call: a client span of the request's server span, `traceparent` sent along.
        let upstreamSpan = bff.tracer.map { tracer in
            let span = tracer.startAnySpan("upstream " + request.method.rawValue, ofKind: .client)
            span.recordHTTP {
                $0.method = request.method.rawValue
                $0.api = plan.api
            }
            tracer.inject(span.context, into: &headers, using: HTTPFieldsInjector())
            return span
        }
        let upstreamRequest = UpstreamRequest(
            method: request.method, url: plan.url, headers: headers, contentLength: contentLength,
            timeout: plan.route.timeout, eventLoop: eventLoop, caFile: plan.route.caFile)
        let upstream: UpstreamResponse
        do {
            upstream = try await transport.send(upstreamRequest, body: plan.body.hasBody ? request.body : nil)
            upstreamSpan?.recordStatus(upstream.head.status.code)
        } catch let error as UpstreamError {
            upstreamSpan?.recordHTTP { $0.errorType = error.description }
            upstreamSpan?.end()
            if error.isClientFault {
                logger.debug("request body broke off or was malformed", metadata: ["bff.api": .string(plan.api)])
            } else {
                APICallLog.upstreamFailure(error, api: plan.api, logger: logger, metrics: bff.metrics)
            }
            return (BFFResponses.problem(error.problem, cookies: plan.cookies), nil)
        } catch {
            upstreamSpan?.end()
            return (BFFResponses.problem(.upstreamUnavailable, cookies: plan.cookies), nil)
        }

        // An upstream's 401 challenge (the same rule as on the event loop): a step-up problem, or
        // one more try with its DPoP nonce. The unwanted body is never read: dropping the response
        // closes its connection (as the event loop abandons it), so a slow body cannot hold it.
        if upstream.head.status.code == 401,
            let challenge = bff.planner.challenge(
                in: plan, status: 401, fields: upstream.head.headerFields, name: { $0.name.canonicalName },
                value: { $0.value })
        {
            switch challenge {
            case .stepUp(let problem):
                upstreamSpan?.end()
                return (BFFResponses.problem(problem, cookies: plan.cookies), 401)
            case .dpopNonce:
                if !retried, !plan.body.hasBody, APIExchange.idempotent.contains(plan.method),
                    let resigned = bff.planner.resigned(plan)
                {
                    upstreamSpan?.end()
                    return await forward(request, plan: resigned, eventLoop: eventLoop, logger: logger, retried: true)
                }
            }
        }
        var responseHeaders = HTTPFields()
        responseHeaders.reserveCapacity(upstream.head.headerFields.count + plan.cookies.count)
        bff.planner.filterBrowserHeaders(
            upstream.head.headerFields, connection: upstream.head.headerFields[values: .connection],
            lowercasedName: { $0.name.canonicalName }, value: { $0.value }, keep: { responseHeaders.append($0) })
        for cookie in plan.cookies { responseHeaders.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        // A failure after the head (upstream stalled or closed mid-body) is logged like on the
        // event-loop path; the server then closes the client connection. (A body already complete
        // in one buffer has a length and cannot fail.)
        var body = upstream.body
        if body.contentLength == nil {
            let upstreamBody = body
            let api = plan.api
            let metrics = bff.metrics
            body = ResponseBody { writer in
                do {
                    try await upstreamBody.write(writer)
                } catch let error as UpstreamError {
                    APICallLog.upstreamFailure(error, api: api, midResponse: true, logger: logger, metrics: metrics)
                    throw error
                }
            }
        }
        // The upstream span ends with the upstream's body.
        let response = Response(status: upstream.head.status, headers: responseHeaders, body: body)
        return (
            upstreamSpan.map { span in response.observingEnd { _, _, _ in span.end() } } ?? response,
            upstream.head.status.code
        )
    }
}

extension APICallRequest {
    /// The planner's view of a Hummingbird request.
    init(_ request: Request, remoteAddress: String?) {
        var fields: [Field] = []
        fields.reserveCapacity(request.headers.count)
        var upgrade = false
        for field in request.headers {
            fields.append(Field(name: field.name.rawName, value: field.value))
            if field.name == .upgrade { upgrade = true }
        }
        self.init(
            method: request.method.rawValue, target: request.head.path ?? "/", fields: fields,
            remoteAddress: remoteAddress, isUpgrade: upgrade)
    }
}

/// The log lines of the API pipeline, one function each, for every adapter.
enum APICallLog {
    /// A failed upstream exchange: before the head (answered 502/503/504) or mid-response
    /// (`bff.phase: body`, the client connection closed).
    static func upstreamFailure(
        _ error: UpstreamError, api: String, midResponse: Bool = false, logger: Logger, metrics: BFFMetrics
    ) {
        metrics.upstreamFailed(
            api: api,
            kind: midResponse && !error.isTimeout
                ? .reset : error.isTimeout ? .timeout : error.isBusy ? .busy : .connect)
        logger.warning(
            "upstream request failed",
            metadata: [
                "bff.api": .string(api), "bff.error": .string(error.description),
                "bff.phase": .string(midResponse ? "body" : "head"),
            ])
    }
}

extension UpstreamError {
    /// The problem a failed exchange is answered with: 504 for a timeout, 503 (`Retry-After`) when
    /// the pool had no connection in time, else 502.
    var problem: Problem {
        if isTimeout { return .upstreamTimeout }
        if isBusy { return .upstreamBusy }
        if isClientFault { return .badRequest }
        return .upstreamUnavailable
    }
}
