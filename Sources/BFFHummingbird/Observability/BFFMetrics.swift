import CoreMetrics
import Synchronization

/// The gateway's metrics (SPEC §9 and §11.2), through swift-metrics with an explicit factory (the
/// gateway passes a Prometheus one; library users pass theirs, or nothing: ``disabled``).
///
/// Labels are bounded: `route` and `api` are configured route paths (or the router's matched
/// pattern), never request paths; `status` is the numeric code; every outcome, reason and kind is
/// one of this type's enumerations. Metric objects are made once per label set and kept.
///
/// A gateway with several frontends gives each frontend's BFF ``forFrontend(_:)``: every family
/// but the session store's then has a first label `frontend` (a configured name). One gateway
/// labels all its frontends this way or none, so a family never mixes labelled and unlabelled
/// series.
public final class BFFMetrics: Sendable {
    /// How a login callback ended.
    public enum LoginOutcome: String, Sendable, CaseIterable {
        case success
        /// Malformed callback: no state, no code, unreadable query.
        case invalidCallback = "invalid_callback"
        /// No matching, expired, replayed or mismatched login transaction.
        case state
        /// RFC 9207 `iss` missing or wrong.
        case iss
        /// The IdP answered with an OAuth error (besides a silent login's `login_required`).
        case idpError = "idp_error"
        /// A `prompt=none` login that found no IdP session.
        case silentNone = "silent_none"
        /// The token endpoint refused the code.
        case tokenEndpoint = "token_endpoint"
        /// The ID token was missing or failed validation.
        case idToken = "id_token"
        /// The IdP (metadata, token endpoint, keys) could not be reached.
        case idpUnavailable = "idp_unavailable"
        /// The session could not be stored.
        case sessionStore = "session_store"
    }

    /// Why a session ended.
    public enum SessionEndReason: String, Sendable, CaseIterable {
        case logout, backchannel, frontchannel, expired, revoked
        case refreshRejected = "refresh_rejected"
    }

    /// How a refresh-token request ended.
    public enum RefreshOutcome: String, Sendable, CaseIterable {
        case success
        /// `invalid_grant`: the session ends.
        case rejected
        /// Any other failure: 503, the session is kept.
        case idpUnavailable = "idp_unavailable"
    }

    /// How a back-channel logout request ended.
    public enum BackchannelOutcome: String, Sendable, CaseIterable {
        /// A valid logout token (whether or not a session matched).
        case success
        /// Refused: malformed, bad signature, wrong claims, replayed.
        case invalidToken = "invalid_token"
        /// The IdP's keys or the session store could not be reached.
        case unavailable
    }

    /// What kind of upstream failure answered a call (or cut a response).
    public enum UpstreamErrorKind: String, Sendable, CaseIterable {
        /// No connection (refused, closed before the head).
        case connect
        /// No head or no progress within the route's timeout.
        case timeout
        /// The upstream failed after the head (closed or reset mid-body).
        case reset
        /// The pool had no connection within its wait deadline.
        case busy
    }

    /// A session-store operation, as `bff_session_store_duration_seconds{operation}` labels it.
    public enum StoreOperation: String, Sendable, CaseIterable {
        case insert, find, update, replace, remove, ping, list
        case removeAll = "remove_all"
        case removeExpired = "remove_expired"
    }

    private let factory: any MetricsFactory
    /// The frontend whose numbers these are, when the gateway has several.
    public let frontend: String?
    /// One timer and one error counter per store operation, made at once (the families show up
    /// on the first scrape, and recording takes no lock of ours).
    private let storeTimers: [StoreOperation: Timer]
    private let storeErrors: [StoreOperation: Counter]
    /// Metric objects by label set, made once: the per-request path takes this lock once and
    /// hashes three small values (no arrays, no string building once a label set is known).
    private let cache = Mutex(Cache())

    struct Cache {
        var requests: [RequestKey: Counter] = [:]
        var durations: [String: Timer] = [:]
        var upstreamDurations: [String: Timer] = [:]
        var others: [MetricKey: Counter] = [:]
    }

    struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    struct MetricKey: Hashable {
        let label: String
        let first: String
        let second: String
    }

    /// Metrics made by `factory`; with `frontend`, labelled with it.
    public init(factory: any MetricsFactory, frontend: String? = nil) {
        self.factory = factory
        self.frontend = frontend
        var timers: [StoreOperation: Timer] = [:]
        var errors: [StoreOperation: Counter] = [:]
        for operation in StoreOperation.allCases {
            timers[operation] = Timer(
                label: "bff_session_store_duration_seconds", dimensions: [("operation", operation.rawValue)],
                factory: factory)
            errors[operation] = Counter(
                label: "bff_session_store_errors_total", dimensions: [("operation", operation.rawValue)],
                factory: factory)
        }
        self.storeTimers = timers
        self.storeErrors = errors
    }

    /// Metrics that go nowhere.
    public static let disabled = BFFMetrics(factory: NOOPMetricsHandler.instance)

    /// The same metrics for one of several frontends: labelled `frontend="<name>"`.
    public func forFrontend(_ name: String) -> BFFMetrics { BFFMetrics(factory: factory, frontend: name) }

    /// `labels`, after the `frontend` label when there is one.
    private func dimensions(_ labels: [(String, String)]) -> [(String, String)] {
        guard let frontend else { return labels }
        return [("frontend", frontend)] + labels
    }

    /// A counter of a rarely used family (outcomes, reasons): up to two labels.
    private func counter(_ label: String, _ first: (String, String)? = nil, _ second: (String, String)? = nil)
        -> Counter
    {
        let key = MetricKey(label: label, first: first?.1 ?? "", second: second?.1 ?? "")
        return cache.withLock { cache in
            if let counter = cache.others[key] { return counter }
            let counter = Counter(
                label: label, dimensions: dimensions([first, second].compactMap { $0 }), factory: factory)
            cache.others[key] = counter
            return counter
        }
    }

    /// The methods counted by name; any other is `OTHER` (a client chooses the method).
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// One answered request: `bff_http_requests_total{route,method,status}` and
    /// `bff_http_request_duration_seconds{route}` (until the response's end); with
    /// `upstreamDuration`, `bff_upstream_request_duration_seconds{api}` too.
    public func request(
        route: String, method: String, status: Int, duration: Duration, upstreamDuration: Duration? = nil
    ) {
        let key = RequestKey(
            route: route, method: Self.knownMethods.contains(method) ? method : "OTHER", status: status)
        // `self.factory` and `self.dimensions` only on a miss: taking them out first copied the
        // factory and allocated a closure on every call.
        let (counter, timer, upstreamTimer) = cache.withLock { cache -> (Counter, Timer, Timer?) in
            let counter =
                cache.requests[key]
                ?? {
                    let made = Counter(
                        label: "bff_http_requests_total",
                        dimensions: self.dimensions([
                            ("route", key.route), ("method", key.method), ("status", String(key.status)),
                        ]),
                        factory: self.factory)
                    cache.requests[key] = made
                    return made
                }()
            let timer =
                cache.durations[route]
                ?? {
                    let made = Timer(
                        label: "bff_http_request_duration_seconds", dimensions: self.dimensions([("route", route)]),
                        factory: self.factory)
                    cache.durations[route] = made
                    return made
                }()
            guard upstreamDuration != nil else { return (counter, timer, nil) }
            let upstreamTimer =
                cache.upstreamDurations[route]
                ?? {
                    let made = Timer(
                        label: "bff_upstream_request_duration_seconds", dimensions: self.dimensions([("api", route)]),
                        factory: self.factory)
                    cache.upstreamDurations[route] = made
                    return made
                }()
            return (counter, timer, upstreamTimer)
        }
        counter.increment()
        timer.recordNanoseconds(duration.nanoseconds)
        if let upstreamDuration { upstreamTimer?.recordNanoseconds(upstreamDuration.nanoseconds) }
    }

    /// `bff_session_store_duration_seconds{operation}` (every call to the store, failed ones
    /// included) and, when it threw or timed out, `bff_session_store_errors_total{operation}`.
    public func storeOperation(_ operation: StoreOperation, duration: Duration, failed: Bool) {
        storeTimers[operation]?.recordNanoseconds(duration.nanoseconds)
        if failed { storeErrors[operation]?.increment() }
    }

    /// `bff_upstream_errors_total{api,kind}`.
    public func upstreamFailed(api: String, kind: UpstreamErrorKind) {
        counter("bff_upstream_errors_total", ("api", api), ("kind", kind.rawValue)).increment()
    }

    /// `bff_sessions_started_total`.
    public func sessionStarted() {
        counter("bff_sessions_started_total").increment()
    }

    /// `bff_sessions_ended_total{reason}`.
    public func sessionsEnded(_ reason: SessionEndReason, count: Int = 1) {
        guard count > 0 else { return }
        counter("bff_sessions_ended_total", ("reason", reason.rawValue)).increment(by: Int64(count))
    }

    /// `bff_token_refresh_total{outcome}`.
    public func tokenRefresh(_ outcome: RefreshOutcome) {
        counter("bff_token_refresh_total", ("outcome", outcome.rawValue)).increment()
    }

    /// `bff_login_total{outcome}`.
    public func login(_ outcome: LoginOutcome) {
        counter("bff_login_total", ("outcome", outcome.rawValue)).increment()
    }

    /// `bff_backchannel_logout_total{outcome}`.
    public func backchannelLogout(_ outcome: BackchannelOutcome) {
        counter("bff_backchannel_logout_total", ("outcome", outcome.rawValue)).increment()
    }

    /// `bff_client_token_cache_total{result}`: a client-credentials token served from the cache
    /// (`hit`) or fetched (`miss`).
    public func clientToken(cacheHit: Bool) {
        counter("bff_client_token_cache_total", ("result", cacheHit ? "hit" : "miss")).increment()
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
