import CoreMetrics
import Synchronization

/// The gateway's metrics (SPEC §9 and §11.2), through swift-metrics with an explicit factory (the
/// gateway passes a Prometheus one; library users pass theirs, or nothing: ``disabled``).
///
/// Labels are bounded: `route` and `api` are configured route paths (or the router's matched
/// pattern), never request paths; `status` is the numeric code; every outcome, reason and kind is
/// one of this type's enumerations. Metric objects are made once per label set and kept.
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

    private let factory: any MetricsFactory
    private let counters = Mutex<[MetricKey: Counter]>([:])
    private let timers = Mutex<[MetricKey: Timer]>([:])

    /// Metrics made by `factory`.
    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// Metrics that go nowhere.
    public static let disabled = BFFMetrics(factory: NOOPMetricsHandler.instance)

    struct MetricKey: Hashable {
        let label: String
        let dimensions: [String]
    }

    private func counter(_ label: String, _ dimensions: KeyValuePairs<String, String> = [:]) -> Counter {
        let key = MetricKey(label: label, dimensions: dimensions.flatMap { [$0.key, $0.value] })
        return counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions.map { ($0.key, $0.value) }, factory: factory)
            counters[key] = counter
            return counter
        }
    }

    private func timer(_ label: String, _ dimensions: KeyValuePairs<String, String>) -> Timer {
        let key = MetricKey(label: label, dimensions: dimensions.flatMap { [$0.key, $0.value] })
        return timers.withLock { timers in
            if let timer = timers[key] { return timer }
            let timer = Timer(label: label, dimensions: dimensions.map { ($0.key, $0.value) }, factory: factory)
            timers[key] = timer
            return timer
        }
    }

    /// The methods counted by name; any other is `OTHER` (a client chooses the method).
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// One answered request: `bff_http_requests_total{route,method,status}` and
    /// `bff_http_request_duration_seconds{route}` (until the response head).
    public func request(route: String, method: String, status: Int, duration: Duration) {
        let method = Self.knownMethods.contains(method) ? method : "OTHER"
        counter("bff_http_requests_total", ["route": route, "method": method, "status": String(status)])
            .increment()
        timer("bff_http_request_duration_seconds", ["route": route]).recordNanoseconds(duration.nanoseconds)
    }

    /// An upstream's time to its response head: `bff_upstream_request_duration_seconds{api}`.
    public func upstreamResponded(api: String, after duration: Duration) {
        timer("bff_upstream_request_duration_seconds", ["api": api]).recordNanoseconds(duration.nanoseconds)
    }

    /// `bff_upstream_errors_total{api,kind}`.
    public func upstreamFailed(api: String, kind: UpstreamErrorKind) {
        counter("bff_upstream_errors_total", ["api": api, "kind": kind.rawValue]).increment()
    }

    /// `bff_sessions_started_total`.
    public func sessionStarted() {
        counter("bff_sessions_started_total").increment()
    }

    /// `bff_sessions_ended_total{reason}`.
    public func sessionsEnded(_ reason: SessionEndReason, count: Int = 1) {
        guard count > 0 else { return }
        counter("bff_sessions_ended_total", ["reason": reason.rawValue]).increment(by: Int64(count))
    }

    /// `bff_token_refresh_total{outcome}`.
    public func tokenRefresh(_ outcome: RefreshOutcome) {
        counter("bff_token_refresh_total", ["outcome": outcome.rawValue]).increment()
    }

    /// `bff_login_total{outcome}`.
    public func login(_ outcome: LoginOutcome) {
        counter("bff_login_total", ["outcome": outcome.rawValue]).increment()
    }

    /// `bff_backchannel_logout_total{outcome}`.
    public func backchannelLogout(_ outcome: BackchannelOutcome) {
        counter("bff_backchannel_logout_total", ["outcome": outcome.rawValue]).increment()
    }

    /// `bff_client_token_cache_total{result}`: a client-credentials token served from the cache
    /// (`hit`) or fetched (`miss`).
    public func clientToken(cacheHit: Bool) {
        counter("bff_client_token_cache_total", ["result": cacheHit ? "hit" : "miss"]).increment()
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
