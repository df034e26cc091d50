import Logging

/// What the API-call hook hears about each proxied call, on every path (tests and diagnostics
/// today; metrics and traces plug in here).
public struct APICallEvent: Sendable {
    /// Which pipeline served a call.
    public struct Pipeline: Sendable, Hashable, CustomStringConvertible {
        enum Base: Hashable { case eventLoop, router }
        let base: Base
        /// Forwarded on the event loop by the gateway's channel handler.
        public static let eventLoop = Pipeline(base: .eventLoop)
        /// Decided and forwarded by ``RemoteAPIMiddleware`` in the router.
        public static let router = Pipeline(base: .router)
        /// `event-loop` or `router`.
        public var description: String { base == .eventLoop ? "event-loop" : "router" }
    }

    /// Which pipeline served the call.
    public var pipeline: Pipeline
    /// The route's configured path (never the request path); empty when no route was found.
    public var api: String
    /// The request method.
    public var method: String
    /// The request target as received. For tests that tell their own requests apart; never log it.
    public var target: String
    /// The status sent to the client.
    public var status: Int
    /// The upstream's status; nil when the gateway answered itself (a refusal, a failed upstream).
    public var upstreamStatus: Int?
    /// From the request's arrival to the response's last byte (or to the moment it was cut short).
    public var duration: Duration
    /// From the upstream request's start (a pooled connection's wait included) to the upstream
    /// response's end; nil when no upstream answered.
    public var upstreamDuration: Duration?
    /// The response body bytes written to the client (a gateway's own answer: its body's length).
    public var responseBytes: Int?
    /// False when the response was cut short: the upstream failed mid-body, or the client went
    /// away before the whole response was written (status 499 when it left before the head).
    public var complete: Bool = true
    /// The session's logout id (the access log hashes it; never logged or exposed).
    var sessionLogoutID: String?
}

extension BFF {
    /// The `route` label of a request: its configured route or matched pattern; `static` for
    /// static files (Hummingbird names them after its file middleware); `unmatched` when none
    /// matched (Hummingbird's `NotFound`, an API call refused before routing).
    public static func routeLabel(_ route: String?) -> String {
        guard let route, !route.isEmpty, route != "NotFound" else { return "unmatched" }
        return route == "FileMiddleware" ? "static" : route
    }

    /// The one report of an API call, for every adapter: its metrics, then the observer hook.
    func report(_ event: APICallEvent) { reporter.report(event) }

    /// What reports this BFF's calls. The event-loop adapter keeps one per server: copying the
    /// whole `BFF` for every call retained each of its shared objects, from every event loop.
    var reporter: APICallReporter {
        APICallReporter(metrics: metrics, accessLogger: accessLogger, observer: apiCallObserver)
    }
}

/// The parts of a ``BFF`` that report API calls (metrics, access log, the API-call hook).
struct APICallReporter: Sendable {
    let metrics: BFFMetrics
    let accessLogger: Logger?
    let observer: APICallObserver?

    /// The one report of an API call, for every adapter: its metrics, then the observer hook.
    func report(_ event: APICallEvent) {
        let route = BFF.routeLabel(event.api)
        metrics.request(
            route: route, method: event.method, status: event.status, duration: event.duration,
            upstreamDuration: event.upstreamDuration)
        logAccess(
            method: event.method, route: route, status: event.status, duration: event.duration,
            upstreamStatus: event.upstreamStatus, bytes: event.responseBytes, complete: event.complete,
            sessionLogoutID: event.sessionLogoutID)
        observer?(event)
    }
}

/// Called once per API call (forwarded or refused) when its response has ended: written in full,
/// or cut short.
public typealias APICallObserver = @Sendable (APICallEvent) -> Void
