import BFFCore
import BFFForwarder
import Logging
import NIOCore
import NIOHTTP1
import Tracing

/// What the gateway's API handler needs, computed once per server.
final class APICallSettings: Sendable {
    let planner: APICallPlanner
    let forwarder: NIOUpstream
    let logger: Logger
    let tracer: CallTracer?
    /// The BFF's parts a call needs, held apart: copying the whole `BFF` per call retained every
    /// one of its shared objects, from every event loop.
    let reporter: APICallReporter

    init(bff: BFF, forwarder: NIOUpstream) {
        self.planner = bff.planner
        self.forwarder = forwarder
        self.logger = bff.logger
        self.tracer = bff.tracer.map(CallTracer.init)
        self.reporter = bff.reporter
    }

    /// Reports how a call was answered (metrics, access log, the API-call hook) and ends its
    /// server span: once its response has ended, in full or cut short.
    func observe(
        _ exchange: APIExchange, api: String, status: Int, fromUpstream: Bool, bytes: Int?, complete: Bool = true
    ) {
        let now = ContinuousClock.now
        if let span = exchange.span {
            exchange.span = nil
            span.record {
                $0.route = api
                $0.routeInName = true
                $0.status = status
                if !complete { $0.incomplete = true }
            }
            span.end()
        }
        reporter.report(
            APICallEvent(
                pipeline: .eventLoop, api: api, method: exchange.request.method.rawValue, target: exchange.request.uri,
                status: status, upstreamStatus: fromUpstream ? status : nil, duration: now - exchange.started,
                upstreamDuration: fromUpstream ? exchange.upstreamStarted.map { now - $0 } : nil,
                responseBytes: bytes, complete: complete, sessionLogoutID: exchange.plan?.sessionLogoutID))
    }

    /// The response head for the browser: the upstream's status, the headers the policy lets
    /// through, the plan's cookies.
    /// `closes` is true when the connection must close after this response: the client asked for
    /// it, or it speaks HTTP/1.0 and the response has no length (HTTP/1.0 has no chunked coding,
    /// so only the close can end the body).
    func browserHead(_ upstream: HTTPResponseHead, request: HTTPRequestHead, cookies: [SetCookie])
        -> (head: HTTPResponseHead, closes: Bool)
    {
        var headers = HTTPHeaders()
        headers.reserveCapacity(upstream.headers.count + cookies.count + 1)
        var hasLength = false
        planner.filterBrowserHeaders(
            upstream.headers, connection: upstream.headers["connection"], lowercasedName: { $0.name.asciiLowercased },
            value: { $0.value },
            keep: { field in
                if !hasLength, field.name.asciiLowercased == "content-length" { hasLength = true }
                headers.add(name: field.name, value: field.value)
            })
        for cookie in cookies { headers.add(name: "Set-Cookie", value: cookie.headerValue) }
        let closes =
            !request.isKeepAlive || request.endsHTTPParsing
            || (request.version.minor == 0 && !hasLength && request.method != .HEAD
                && upstream.status.code != 204 && upstream.status.code != 304)
        if closes { headers.add(name: "Connection", value: "close") }
        return (HTTPResponseHead(version: request.version, status: upstream.status, headers: headers), closes)
    }
}
