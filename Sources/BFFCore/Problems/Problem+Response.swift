/// The one way a problem becomes a response, whichever adapter writes it.
extension Problem {
    /// The response headers of this problem, in order: `Content-Type`, `Cache-Control`,
    /// `X-Content-Type-Options`, `Retry-After` (when set) and one `Set-Cookie` per cookie.
    /// Adapters add the framing (`Content-Length`) themselves.
    public func responseHeaders(cookies: [SetCookie] = []) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/problem+json"), ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if let retryAfter { headers.append(("Retry-After", String(retryAfter))) }
        for cookie in cookies { headers.append(("Set-Cookie", cookie.headerValue)) }
        return headers
    }
}
