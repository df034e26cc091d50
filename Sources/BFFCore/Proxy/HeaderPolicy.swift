/// Which request and response headers cross the proxy (SPEC §8).
public struct HeaderPolicy: Sendable {
    /// Lower-cased names never forwarded in either direction.
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    let antiForgeryHeader: String
    let cookiePrefixes: [String]

    /// Creates a policy that also strips the anti-forgery header and filters `Set-Cookie`s whose
    /// names start with any of `bffCookiePrefixes`.
    public init(antiForgeryHeader: String, bffCookiePrefixes: [String]) {
        self.antiForgeryHeader = antiForgeryHeader.lowercased()
        self.cookiePrefixes = bffCookiePrefixes
    }

    /// Names listed in `Connection` values (also dropped).
    public static func connectionTokens(_ values: [String]) -> Set<String> {
        // The usual single `keep-alive` or `close` names no other header: nothing extra to drop.
        if values.count == 1, values[0].utf8.count <= 10 {
            let value = values[0].lowercased()
            if value == "keep-alive" || value == "close" { return [] }
        }
        var tokens = Set<String>()
        for value in values {
            for token in value.split(separator: ",") {
                let trimmed = token.trimmingASCIIWhitespace().lowercased()
                if !trimmed.isEmpty { tokens.insert(trimmed) }
            }
        }
        return tokens
    }

    /// Whether a request header (lower-cased name) is forwarded upstream. `trustedForwarding`
    /// keeps client `X-Forwarded-*` (except `-Proto`/`-Host`), `Forwarded` and `X-Real-IP` (only
    /// for trusted proxies, like `True-Client-IP`, `Client-IP`, `X-Client-IP`, `X-Cluster-Client-IP`);
    /// `X-Original-URL`, `X-Rewrite-URL` and any name with `_` never pass (SPEC §11.1).
    public func forwardsRequestHeader(_ name: String, connectionTokens: Set<String>, trustedForwarding: Bool) -> Bool {
        if HeaderPolicy.hopByHop.contains(name) || connectionTokens.contains(name) { return false }
        switch name {
        case "cookie", "authorization", "host", "content-length", "expect", "dpop": return false
        // Rewrite hints some frameworks (IIS, Symfony, Zend) take as the request path: never from a client.
        case "x-original-url", "x-rewrite-url": return false
        // The gateway sets these itself from the public origin.
        case "x-forwarded-proto", "x-forwarded-host": return false
        // Client-address headers of other proxies and CDNs: trusted proxies only.
        case "forwarded", "x-real-ip", "true-client-ip", "client-ip", "x-client-ip", "x-cluster-client-ip":
            return trustedForwarding
        default:
            // Names with `_` never pass (nginx's default too): CGI, PHP and WSGI map `X-Forwarded_For`
            // to the same variable as `X-Forwarded-For`.
            if name.utf8.contains(UInt8(ascii: "_")) { return false }
            // Every other `X-Forwarded-*` (`-For`, `-Port`, `-Prefix`, `-Server`, …): trusted proxies only.
            if name.hasPrefix("x-forwarded-") { return trustedForwarding }
            return name != antiForgeryHeader
        }
    }

    /// Whether a request's `Transfer-Encoding` values (none, or exactly `chunked`) can be forwarded;
    /// any other coding (`xchunked`, `chunked, identity`, `gzip, chunked`) is refused with 501 before
    /// the upstream is contacted (SPEC §11.1): the upstream might frame the body differently.
    public static func acceptsTransferEncoding(_ values: [String]) -> Bool {
        values.isEmpty || (values.count == 1 && values[0].trimmingASCIIWhitespace().lowercased() == "chunked")
    }

    /// Whether a response header (lower-cased name, with its value) is passed back to the browser.
    public func forwardsResponseHeader(_ name: String, value: String, connectionTokens: Set<String>) -> Bool {
        if HeaderPolicy.hopByHop.contains(name) || connectionTokens.contains(name) { return false }
        if name == "set-cookie" {
            let cookieName = value.prefix { $0 != "=" }.trimmingASCIIWhitespace()
            return !cookiePrefixes.contains { cookieName.hasPrefix($0) }
        }
        return true
    }
}

extension StringProtocol {
    /// Trims spaces and tabs (no Foundation).
    func trimmingASCIIWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
