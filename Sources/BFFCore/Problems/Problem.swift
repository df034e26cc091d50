/// An RFC 9457 problem with a stable `urn:bff:problem:*` type. Never carries internal details.
public struct Problem: Sendable, Hashable, Error {
    /// The problem type URI.
    public var type: String
    /// A short human-readable summary.
    public var title: String
    /// The HTTP status.
    public var status: Int
    /// Seconds for a `Retry-After` header (temporary conditions: 503), nil for none.
    public var retryAfter: Int?
    /// Step-up: the `acr` values a new login must reach (extension member `acrValues`).
    public var acrValues: [String]?
    /// Step-up: the most seconds since the user authenticated (extension member `maxAge`).
    public var maxAge: Int64?

    /// Creates a problem.
    public init(type: String, title: String, status: Int, retryAfter: Int? = nil) {
        self.type = type
        self.title = title
        self.status = status
        self.retryAfter = retryAfter
    }

    /// Missing or wrong anti-forgery header, or a cross-site request (401).
    public static let antiforgery = Problem(
        type: "urn:bff:problem:antiforgery", title: "Anti-forgery check failed", status: 401)
    /// No session (401).
    public static let unauthenticated = Problem(
        type: "urn:bff:problem:unauthenticated", title: "Not authenticated", status: 401)
    /// Authenticated but not allowed (403).
    public static let forbidden = Problem(type: "urn:bff:problem:forbidden", title: "Forbidden", status: 403)
    /// The session ended because its refresh token was rejected (401).
    public static let sessionExpired = Problem(
        type: "urn:bff:problem:session-expired", title: "Session expired", status: 401)
    /// `returnUrl` is not a local path (400).
    public static let invalidReturnURL = Problem(
        type: "urn:bff:problem:invalid-return-url", title: "Invalid returnUrl", status: 400)
    /// `prompt` is not accepted (400).
    public static let invalidPrompt = Problem(
        type: "urn:bff:problem:invalid-prompt", title: "Invalid prompt", status: 400)
    /// Logout `sid` missing or wrong (400).
    public static let invalidSID = Problem(type: "urn:bff:problem:invalid-sid", title: "Invalid sid", status: 400)
    /// The IdP could not be reached (503).
    public static let idpUnavailable = Problem(
        type: "urn:bff:problem:idp-unavailable", title: "Identity provider unavailable", status: 503)
    /// A request the BFF refuses to process (400).
    public static let badRequest = Problem(type: "urn:bff:problem:bad-request", title: "Bad request", status: 400)
    /// Nothing here (404).
    public static let notFound = Problem(type: "urn:bff:problem:not-found", title: "Not found", status: 404)
    /// A request that matches none of the gateway's frontends (404): it never reaches any
    /// frontend's sessions.
    public static let noFrontend = Problem(type: "urn:bff:problem:no-frontend", title: "No such frontend", status: 404)
    /// Wrong method (405).
    public static let methodNotAllowed = Problem(
        type: "urn:bff:problem:method-not-allowed", title: "Method not allowed", status: 405)
    /// A request path the proxy refuses to interpret (`..`, encoded slashes or dots, NUL) (400).
    public static let invalidPath = Problem(
        type: "urn:bff:problem:invalid-path", title: "Invalid request path", status: 400)
    /// The upstream API could not be reached (502).
    public static let upstreamUnavailable = Problem(
        type: "urn:bff:problem:upstream-unavailable", title: "Upstream unavailable", status: 502)
    /// The upstream API did not answer in time (504).
    public static let upstreamTimeout = Problem(
        type: "urn:bff:problem:upstream-timeout", title: "Upstream timeout", status: 504)
    /// Every connection to the upstream stayed busy for the pool's wait deadline (503, `Retry-After`).
    public static let upstreamBusy = Problem(
        type: "urn:bff:problem:upstream-busy", title: "Upstream busy", status: 503, retryAfter: 1)
    /// The session store did not answer within its deadline or failed (503, `Retry-After`); the
    /// session is kept.
    public static let storeUnavailable = Problem(
        type: "urn:bff:problem:store-unavailable", title: "Session store unavailable", status: 503, retryAfter: 2)
    /// A request `Transfer-Encoding` other than `chunked` (501); the upstream is not contacted.
    public static let unsupportedTransferCoding = Problem(
        type: "urn:bff:problem:unsupported-transfer-coding", title: "Transfer coding not implemented", status: 501)
    /// A WebSocket route called without a WebSocket upgrade (426).
    public static let upgradeRequired = Problem(
        type: "urn:bff:problem:websocket-upgrade-required", title: "WebSocket upgrade required", status: 426)
    /// A WebSocket handshake whose `Origin` is not the public origin (403): browsers cannot send the
    /// anti-forgery header on a handshake, so the origin is what proves it is the SPA's own.
    public static let webSocketOrigin = Problem(
        type: "urn:bff:problem:websocket-origin", title: "WebSocket origin refused", status: 403)
    /// The session's authentication is not strong or recent enough for the route (401): log in
    /// again with `/bff/login?acrValues=…&maxAge=…` (the members say which).
    public static func stepUpRequired(acrValues: [String]?, maxAge: Int64?) -> Problem {
        var problem = Problem(type: "urn:bff:problem:step-up-required", title: "Step-up required", status: 401)
        problem.acrValues = acrValues
        problem.maxAge = maxAge
        return problem
    }
    /// An unexpected failure inside the BFF (500); details only in the log.
    public static let internalError = Problem(type: "urn:bff:problem:internal", title: "Internal error", status: 500)

    /// The `application/problem+json` body.
    public func json(traceID: String? = nil) -> String {
        var body = "{\"type\":\(JSONText.quote(type)),\"title\":\(JSONText.quote(title)),\"status\":\(status)"
        if let acrValues { body += ",\"acrValues\":\(JSONText.quote(acrValues.joined(separator: " ")))" }
        if let maxAge { body += ",\"maxAge\":\(maxAge)" }
        if let traceID { body += ",\"traceId\":\(JSONText.quote(traceID))" }
        return body + "}"
    }
}

/// Small helpers for writing JSON text by hand.
public enum JSONText {
    /// `value` as a JSON string literal.
    public static func quote(_ value: String) -> String {
        var output = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "<": output += "\\u003c"  // safe inside HTML script blocks too
            case ">": output += "\\u003e"
            case "&": output += "\\u0026"
            default:
                if scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        return output + "\""
    }
}
