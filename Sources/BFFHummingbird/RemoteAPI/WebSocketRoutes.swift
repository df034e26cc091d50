import BFFCore
import BFFForwarder
import HTTPTypes
import Hummingbird
import Logging

/// Where an accepted WebSocket handshake is bridged to.
public struct WebSocketUpstream: Sendable {
    /// `ws://` or `wss://` URL, path and query included.
    public let url: String
    /// Headers for the upstream handshake: the route's `Authorization` and `X-Forwarded-*`.
    public let headers: HTTPFields
    /// Headers for the browser's 101 response (a re-issued cookie-mode session).
    public let responseHeaders: HTTPFields
    /// The route's CA file for `wss://` (nil: the system trust store).
    public let caFile: String?
    /// The route prefix (for logs).
    public let route: String
    /// For bridges opened on a session: whether that session is still current (not logged out,
    /// revoked, ended by back-channel logout or `bff sessions revoke`, or expired). A store that
    /// cannot answer counts as "still current": an outage never ends a bridge.
    public let sessionIsCurrent: (@Sendable () async -> Bool)?

    /// A bridge target.
    public init(
        url: String, headers: HTTPFields, responseHeaders: HTTPFields, caFile: String?, route: String,
        sessionIsCurrent: (@Sendable () async -> Bool)?
    ) {
        self.url = url
        self.headers = headers
        self.responseHeaders = responseHeaders
        self.caFile = caFile
        self.route = route
        self.sessionIsCurrent = sessionIsCurrent
    }
}

/// What to do with a request on a WebSocket route.
public enum WebSocketDecision: Sendable {
    /// The path is not a WebSocket route.
    case notAWebSocketRoute
    /// Refused, with the problem to answer when the request stays HTTP.
    case refused(Problem)
    /// Upgrade and bridge.
    case upgrade(WebSocketUpstream)
}

/// The WebSocket adapter of the API pipeline: the ``APICallPlanner`` decides each handshake
/// (SPEC §8: a safe path on a `websocket: true` route, `Origin` exactly the public origin, the
/// route's token — for `user` routes a valid session); this turns its plan into a bridge.
public struct WebSocketRoutes: Sendable {
    let bff: BFF

    /// The routes of `bff`'s configuration.
    public init(bff: BFF) { self.bff = bff }

    /// Whether any route is a WebSocket route.
    public var isEmpty: Bool { !bff.planner.hasWebSocketRoutes }

    /// Decides a WebSocket handshake.
    public func decision(for head: HTTPRequest, remoteAddress: String?, logger: Logger) async -> WebSocketDecision {
        let started = ContinuousClock.now
        var fields: [APICallRequest.Field] = []
        fields.reserveCapacity(head.headerFields.count)
        for field in head.headerFields { fields.append(.init(name: field.name.rawName, value: field.value)) }
        let request = APICallRequest(
            method: head.method.rawValue, target: head.path ?? "/", fields: fields, remoteAddress: remoteAddress,
            isUpgrade: true)
        var decision = bff.planner.plan(request)
        if case .suspend(let work) = decision { decision = await work.resume() }
        switch decision {
        case .pass, .suspend: return .notAWebSocketRoute
        case .refuse(let refusal):
            guard let api = refusal.api else { return .notAWebSocketRoute }
            // Declined: the upgrade layer answers a bare 400 and closes (the same request as
            // plain HTTP gets the problem). Counted here, as that 400 — nothing else sees it.
            bff.report(
                APICallEvent(
                    pipeline: .router, api: api, method: request.method, target: request.target, status: 400,
                    upstreamStatus: nil, duration: .now - started, upstreamDuration: nil, responseBytes: nil,
                    sessionLogoutID: nil))
            return .refused(refusal.problem)
        case .forward(let plan):
            guard plan.isWebSocket else { return .notAWebSocketRoute }
            // Counted here, as a 101.
            bff.report(
                APICallEvent(
                    pipeline: .router, api: plan.api, method: request.method, target: request.target, status: 101,
                    upstreamStatus: nil, duration: .now - started, upstreamDuration: nil, responseBytes: nil,
                    sessionLogoutID: plan.sessionLogoutID))
            return .upgrade(upstream(plan, cookieHeader: CookieHeader(fields: head.headerFields[values: .cookie])))
        }
    }

    func upstream(_ plan: APICallPlan, cookieHeader: CookieHeader) -> WebSocketUpstream {
        let scheme = plan.upstream.tls ? "wss://" : "ws://"
        let url = scheme + plan.upstream.hostHeader + plan.pathAndQuery
        var headers = HTTPFields()
        for field in plan.gatewayFields {
            if let name = HTTPField.Name(field.name) { headers[name] = field.value }
        }
        var responseHeaders = HTTPFields()
        for cookie in plan.cookies { responseHeaders.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        var sessionIsCurrent: (@Sendable () async -> Bool)?
        if plan.hasSession {
            let sessions = bff.sessions
            sessionIsCurrent = { @Sendable in
                do {
                    return try await sessions.load(cookies: cookieHeader) != nil
                } catch {
                    return true
                }
            }
        }
        return WebSocketUpstream(
            url: url, headers: headers, responseHeaders: responseHeaders, caFile: plan.route.caFile, route: plan.api,
            sessionIsCurrent: sessionIsCurrent)
    }
}
