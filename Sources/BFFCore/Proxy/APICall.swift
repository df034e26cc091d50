/// A request as the API-call planner sees it: what every adapter (the gateway's channel handler,
/// the Hummingbird middleware, the WebSocket handshake) can give, in no framework's types.
public struct APICallRequest: Sendable {
    /// One header field as received.
    public struct Field: Sendable {
        /// The name as received.
        public var name: String
        /// The name in lower case.
        public var lowercasedName: String
        /// The value as received.
        public var value: String

        /// A field; `lowercasedName` is computed without allocating when `name` is already lower case.
        @inlinable
        public init(name: String, value: String) {
            self.name = name
            self.lowercasedName = name.utf8.contains { $0 >= 0x41 && $0 <= 0x5A } ? name.lowercased() : name
            self.value = value
        }
    }

    /// The method, e.g. `GET`.
    public var method: String
    /// The request target as received (origin form: path and query).
    public var target: String
    /// Every header field, in order.
    public var fields: [Field]
    /// The client's address (the socket peer), if known.
    public var remoteAddress: String?
    /// Whether the request asks to switch protocols (a WebSocket handshake).
    public var isUpgrade: Bool

    /// A request view.
    public init(method: String, target: String, fields: [Field], remoteAddress: String?, isUpgrade: Bool = false) {
        self.method = method
        self.target = target
        self.fields = fields
        self.remoteAddress = remoteAddress
        self.isUpgrade = isUpgrade
    }
}

/// How a request body is framed on the way up.
public enum APIBodyFraming: Sendable, Equatable {
    /// Whether body bytes follow the head.
    public var hasBody: Bool {
        switch self {
        case .none: false
        case .length(let length): length > 0
        case .chunked: true
        }
    }

    /// No body and no framing header.
    case none
    /// `Content-Length: n` (n may be 0).
    case length(Int)
    /// `Transfer-Encoding: chunked`.
    case chunked
}

/// Everything needed to forward one call; adapters add framing headers and nothing else.
/// (A class: it is handed along the pipeline, and a struct of a dozen strings and arrays would be
/// retained field by field at every copy.)
public final class APICallPlan: Sendable {
    /// The route's configured path (logs, metrics; never the request path).
    public let api: String
    /// The route as the planner holds it (by reference: copying the configuration per call
    /// retained each of its fields).
    let planned: APICallPlanner.PlannedRoute
    /// The route. (A copy of its configuration: hot paths read ``timeout`` and ``isWebSocket``.)
    public var route: APIRouteConfiguration { planned.route }
    /// The route's upstream timeout.
    public var timeout: Duration { planned.route.timeout }
    /// Whether the route is a WebSocket route.
    public var isWebSocket: Bool { planned.route.websocket }
    /// Where to send it.
    public var upstream: APIUpstream { planned.upstream }
    /// Path and query on the upstream (at least `/`).
    public let pathAndQuery: String
    /// The method.
    public let method: String
    /// The client's fields the header policy lets through, in order.
    public let forwardedFields: [APICallRequest.Field]
    /// The gateway's own fields: `X-Forwarded-For/-Proto/-Host`, `Authorization`.
    public let gatewayFields: [(name: String, value: String)]
    /// The request body's framing.
    public let body: APIBodyFraming
    /// Whether the client sent `Expect: 100-continue`.
    public let expectsContinue: Bool
    /// Cookies to set on the response (a renewed or re-sealed session).
    public let cookies: [SetCookie]
    /// The session's logout id, when the call runs on one: what the access log hashes to tell
    /// sessions apart (never logged itself).
    public let sessionLogoutID: String?
    /// Whether the call runs on a session (WebSocket bridges re-check it).
    public var hasSession: Bool { sessionLogoutID != nil }
    /// The DPoP-bound token and its key, when the call carries a proof (to sign a new one).
    let dpop: (key: DPoPKey, token: String)?
    /// Whether the call carries a DPoP proof.
    public var isDPoPBound: Bool { dpop != nil }

    init(
        api: String, planned: APICallPlanner.PlannedRoute, pathAndQuery: String, method: String,
        forwardedFields: [APICallRequest.Field], gatewayFields: [(name: String, value: String)],
        body: APIBodyFraming, expectsContinue: Bool, cookies: [SetCookie], sessionLogoutID: String?,
        dpop: (key: DPoPKey, token: String)? = nil
    ) {
        self.dpop = dpop
        self.api = api
        self.planned = planned
        self.pathAndQuery = pathAndQuery
        self.method = method
        self.forwardedFields = forwardedFields
        self.gatewayFields = gatewayFields
        self.body = body
        self.expectsContinue = expectsContinue
        self.cookies = cookies
        self.sessionLogoutID = sessionLogoutID
    }

    /// The full upstream URL.
    public var url: String { upstream.origin + pathAndQuery }
}

/// A route's upstream, parsed once.
public struct APIUpstream: Sendable {
    /// `scheme://host[:port]`.
    public let origin: String
    /// `https`.
    public let tls: Bool
    /// Host to connect to (IPv6 without brackets).
    public let host: String
    /// Port.
    public let port: Int
    /// The `Host` header value.
    public let hostHeader: String

    init(_ url: WebURL) {
        self.origin = url.origin
        self.tls = url.scheme == "https"
        self.host =
            url.host.hasPrefix("[") && url.host.hasSuffix("]") ? String(url.host.dropFirst().dropLast()) : url.host
        self.port = url.effectivePort
        self.hostHeader = url.port.map { "\(url.host):\($0)" } ?? url.host
    }
}

/// A refused call: the problem to answer and cookies to set with it.
public struct APICallRefusal: Sendable {
    /// The problem.
    public let problem: Problem
    /// Cookies (a cleared session).
    public let cookies: [SetCookie]
    /// The route's configured path, when the request matched one.
    public let api: String?

    /// A refusal.
    public init(problem: Problem, cookies: [SetCookie], api: String?) {
        self.problem = problem
        self.cookies = cookies
        self.api = api
    }
}

/// Work the planner cannot finish without waiting (a store read, a refresh, a client token).
public struct APICallSuspension: Sendable {
    /// The route's configured path.
    public let api: String
    let work: @Sendable () async -> APICallDecision

    /// Does the work; the result is `.forward` or `.refuse`.
    public func resume() async -> APICallDecision { await work() }
}

/// What to do with a request.
public enum APICallDecision: Sendable {
    /// Not an API route: the application handles it.
    case pass
    /// Forward it.
    case forward(APICallPlan)
    /// Answer with a problem.
    case refuse(APICallRefusal)
    /// Wait for ``APICallSuspension/resume()``, then act on its decision.
    case suspend(APICallSuspension)
}
