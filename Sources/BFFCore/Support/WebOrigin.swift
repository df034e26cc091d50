/// An absolute `http(s)` URL split into parts, parsed strictly and without Foundation.
///
/// Used to validate configured origins and issuers, and to compare request `Origin` headers with
/// the public origin.
public struct WebURL: Sendable, Hashable {
    /// `http` or `https` (lower-cased).
    public var scheme: String
    /// Host, lower-cased; IPv6 literals keep their brackets.
    public var host: String
    /// Explicit port, if any.
    public var port: Int?
    /// Path (possibly empty), query and fragment excluded.
    public var path: String
    /// Raw query without `?`, if any.
    public var query: String?

    /// The port in effect (explicit or the scheme's default).
    public var effectivePort: Int { port ?? (scheme == "https" ? 443 : 80) }

    /// `scheme://host[:port]`, with the default port omitted.
    public var origin: String {
        if let port, port != (scheme == "https" ? 443 : 80) { return "\(scheme)://\(host):\(port)" }
        return "\(scheme)://\(host)"
    }

    /// What a browser sends as `Host` for this URL: the host, with the port when it is not the
    /// scheme's default.
    public var hostHeader: String {
        if let port, port != (scheme == "https" ? 443 : 80) { return "\(host):\(port)" }
        return host
    }

    /// Whether the host is a loopback name or address (`localhost`, `*.localhost`, 127.0.0.0/8, `[::1]`).
    public var isLoopback: Bool { WebURL.isLoopbackHost(host) }

    /// Parses `string`; nil unless it is an absolute http(s) URL with a host and no user info.
    public init?(_ string: String) {
        let bytes = Array(string.utf8)
        guard !bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\\") }) else { return nil }
        guard let schemeEnd = string.firstRange(of: "://") else { return nil }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        var rest = string[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var query: String?
        if let mark = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: mark)...])
            rest = rest[..<mark]
        }
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let path = String(rest[authorityEnd...])
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port: Int?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = Int(after.dropFirst()), (1...65535).contains(value) else {
                    return nil
                }
                port = value
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let value = Int(authority[authority.index(after: colon)...]), (1...65535).contains(value) else {
                return nil
            }
            port = value
        }
        guard !host.isEmpty else { return nil }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
        self.path = path
        self.query = query
    }

    /// Whether `host` (lower-case, IPv6 in brackets) is a loopback name or address.
    public static func isLoopbackHost(_ host: String) -> Bool {
        if host == "localhost" || host.hasSuffix(".localhost") || host == "[::1]" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { part in UInt8(part) != nil }
    }
}
