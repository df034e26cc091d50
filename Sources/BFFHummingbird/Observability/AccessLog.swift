import Crypto
import Logging

extension BFF {
    /// One access-log line; see ``APICallReporter/logAccess(method:route:status:duration:upstreamStatus:bytes:complete:sessionLogoutID:)``.
    func logAccess(
        method: String, route: String, status: Int, duration: Duration, upstreamStatus: Int?, bytes: Int?,
        complete: Bool = true, sessionLogoutID: String?
    ) {
        reporter.logAccess(
            method: method, route: route, status: status, duration: duration, upstreamStatus: upstreamStatus,
            bytes: bytes, complete: complete, sessionLogoutID: sessionLogoutID)
    }
}

extension APICallReporter {
    /// One access-log line (when ``accessLogger`` is set), for every request on every path: the
    /// method, the route (configured path or matched pattern, never the request path or query),
    /// the status, the time to the response's last byte, the upstream's status, the body bytes
    /// written, whether the response was cut short, and a short hash of the session. Never a
    /// token, cookie, code or the session's id.
    func logAccess(
        method: String, route: String, status: Int, duration: Duration, upstreamStatus: Int?, bytes: Int?,
        complete: Bool = true, sessionLogoutID: String?
    ) {
        guard let accessLogger else { return }
        var metadata: Logger.Metadata = [
            "http.method": .string(BFFMetrics.knownMethods.contains(method) ? method : "OTHER"),
            "bff.route": .string(route),
            "http.status": .stringConvertible(status),
            "bff.duration_ms": .string(Self.milliseconds(duration)),
        ]
        if let upstreamStatus { metadata["bff.upstream_status"] = .stringConvertible(upstreamStatus) }
        if let bytes { metadata["http.response_bytes"] = .stringConvertible(bytes) }
        if !complete { metadata["bff.incomplete"] = "true" }
        if let sessionLogoutID { metadata["bff.session"] = .string(Self.sessionTag(sessionLogoutID)) }
        accessLogger.info("request", metadata: metadata)
    }

    /// Milliseconds with three decimals.
    static func milliseconds(_ duration: Duration) -> String {
        let micros = duration.nanoseconds / 1_000
        let fraction = String(micros % 1_000)
        return "\(micros / 1_000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// 12 hex digits of SHA-256 over a fixed label and the session's logout id: tells one session's
    /// lines apart from another's, and nothing about the session.
    static func sessionTag(_ logoutID: String) -> String {
        let digest = SHA256.hash(data: Array(("bff-access-log:" + logoutID).utf8))
        return digest.prefix(6).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}
