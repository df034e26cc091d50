/// Which token a remote API route attaches (SPEC §8).
public struct TokenRequirement: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable {
        case none, user
        case userOrNone = "user-or-none"
        case userOrClient = "user-or-client"
        case client
        case exchange
    }
    let base: Base

    /// No token; the call is forwarded as is (anti-forgery still applies).
    public static let none = TokenRequirement(base: .none)
    /// The user's access token (refreshed as needed); anonymous calls get 401.
    public static let user = TokenRequirement(base: .user)
    /// The user's token if logged in, else no token.
    public static let userOrNone = TokenRequirement(base: .userOrNone)
    /// The user's token if logged in, else a client-credentials token.
    public static let userOrClient = TokenRequirement(base: .userOrClient)
    /// A client-credentials token.
    public static let client = TokenRequirement(base: .client)
    /// The user's token exchanged (RFC 8693) for one aimed at the route's API; anonymous calls get 401.
    public static let exchange = TokenRequirement(base: .exchange)

    /// Parses the configuration name.
    public init?(name: String) {
        guard let base = Base(rawValue: name) else { return nil }
        self.base = base
    }
    init(base: Base) { self.base = base }

    /// Whether a logged-in user's token is used when present.
    public var usesUserToken: Bool {
        base == .user || base == .userOrNone || base == .userOrClient || base == .exchange
    }
    /// Whether anonymous callers are refused.
    public var requiresUser: Bool { base == .user || base == .exchange }
    /// Whether a client-credentials token may be used.
    public var usesClientToken: Bool { base == .client || base == .userOrClient }
    /// The configuration name.
    public var description: String { base.rawValue }
}

/// `apis[].exchange`: the token a route's calls get by RFC 8693 token exchange of the user's.
public struct TokenExchange: Sendable, Hashable {
    /// `audience` (the API's logical name at the IdP).
    public var audience: String?
    /// `scope` of the new token.
    public var scopes: [String]
    /// `resource` (an absolute URI, RFC 8707).
    public var resource: String?

    /// Creates the parameters.
    public init(audience: String? = nil, scopes: [String] = [], resource: String? = nil) {
        self.audience = audience
        self.scopes = scopes
        self.resource = resource
    }

    /// Under which name the exchanged token is held in the session (beside resource tokens; it
    /// cannot be an absolute URI, so it never meets one).
    public var sessionKey: String {
        // Each part length-prefixed: no two parameter sets share a key.
        "exchange "
            + [audience ?? "", scopes.joined(separator: " "), resource ?? ""].map { "\($0.utf8.count):\($0)" }
            .joined(separator: ";")
    }
}

/// One `apis:` entry: a path prefix forwarded to an upstream.
public struct APIRouteConfiguration: Sendable, Hashable {
    /// Path prefix, matched on a segment boundary (`/api/weather` matches `/api/weather/x`, not `/api/weatherx`).
    public var path: String
    /// Upstream base URL; the rest of the request path is appended to its path.
    public var upstream: String
    /// Token to attach, `user` by default.
    public var token: TokenRequirement
    /// Client-credentials scopes (for `client` and `user-or-client`).
    public var scopes: [String]?
    /// RFC 8707 resource indicator for token requests.
    public var resource: String?
    /// Whole-exchange timeout, 30 s by default.
    public var timeout: Duration
    /// For an `https://` upstream: a PEM file of CAs trusted instead of the system's (private PKI).
    public var caFile: String?
    /// A WebSocket route: handshakes are upgraded and bridged to the upstream (`http` → `ws`,
    /// `https` → `wss`) with the route's token; plain HTTP calls get 426.
    public var websocket: Bool = false
    /// `token: exchange`: what the user's token is exchanged for.
    public var exchange: TokenExchange?
    /// Step-up: the session's `acr` must be one of these (empty: any).
    public var requireAcr: [String] = []
    /// Step-up: the session's `auth_time` must be at most this old (nil: any).
    public var maxAuthAge: Duration?

    /// The name under which the route's token is held in the session beside the main access
    /// token: the exchange's, or the RFC 8707 resource's; nil for the main one.
    public var heldTokenKey: String? {
        if token == .exchange { return exchange?.sessionKey }
        return resource
    }

    /// Whether the route asks for a stronger or fresher authentication than any session has.
    public var requiresStepUp: Bool { !requireAcr.isEmpty || maxAuthAge != nil }

    /// Creates a route with the defaults.
    public init(
        path: String, upstream: String, token: TokenRequirement = .user, scopes: [String]? = nil,
        resource: String? = nil,
        timeout: Duration = .seconds(30), caFile: String? = nil, websocket: Bool = false
    ) {
        self.caFile = caFile
        self.websocket = websocket
        self.path = path
        self.upstream = upstream
        self.token = token
        self.scopes = scopes
        self.resource = resource
        self.timeout = timeout
    }
}

/// The routes, matched by longest path prefix on a segment boundary.
public struct RouteTable: Sendable {
    /// A route with its normalised prefix and parsed upstream.
    public struct Entry: Sendable {
        /// The configuration.
        public let route: APIRouteConfiguration
        /// The prefix without a trailing slash.
        public let prefix: String
        /// The upstream, parsed.
        public let upstream: WebURL
        /// The upstream path without a trailing slash.
        public let upstreamPath: String
    }

    /// The entries, longest prefix first.
    public let entries: [Entry]
    /// Their prefixes, in the same order: matching reads only these (iterating `entries` copied
    /// each entry — its configuration and parsed URL — twice per call).
    private let prefixes: [String]

    /// Builds the table; routes whose upstream does not parse are left out (validation reports them).
    public init(routes: [APIRouteConfiguration]) {
        let entries = routes.compactMap { route -> Entry? in
            guard let upstream = WebURL(route.upstream) else { return nil }
            let prefix = route.path.count > 1 && route.path.hasSuffix("/") ? String(route.path.dropLast()) : route.path
            let path = upstream.path.hasSuffix("/") ? String(upstream.path.dropLast()) : upstream.path
            return Entry(route: route, prefix: prefix, upstream: upstream, upstreamPath: path)
        }.sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
        self.entries = entries
        self.prefixes = entries.map(\.prefix)
    }

    /// The route for a (sanitised) request path and the remainder to append upstream.
    public func match(path: String) -> (entry: Entry, remainder: Substring)? {
        matchIndex(path: path).map { (entries[$0.index], $0.remainder) }
    }

    /// ``match(path:)`` giving the entry's position in ``entries``.
    public func matchIndex(path: String) -> (index: Int, remainder: Substring)? {
        for index in prefixes.indices {
            let prefix = prefixes[index]
            if path == prefix { return (index, "") }
            if path.hasPrefix(prefix) {
                let rest = path.dropFirst(prefix.count)
                if rest.first == "/" || prefix == "/" { return (index, rest) }
            }
        }
        return nil
    }
}

/// Refuses request paths that could mean something else to the upstream (SPEC §8).
public enum PathSanitizer {
    /// Whether the raw request path (without query) is safe to route and forward: no `.`/`..`
    /// segments, no encoded slash, backslash, dot, NUL or semicolon (nor such an encoding encoded
    /// again, `%252e`), no `;` (path parameters), only valid UTF-8 once decoded (no overlong
    /// forms), no control bytes, no backslash (SPEC §8, §11.1).
    public static func isSafe(_ rawPath: some StringProtocol) -> Bool {
        let bytes = Array(rawPath.utf8)
        guard bytes.first == UInt8(ascii: "/"), bytes.count <= 8192 else { return false }
        var index = 0
        var encodedPercent = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x21 || byte == 0x7F || byte == UInt8(ascii: "\\") { return false }
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count else { return false }
                // %2f (/), %2e (.), %5c (\), %00: ambiguous between proxy and upstream.
                if isEncodedDangerous(bytes[index + 1], bytes[index + 2]) { return false }
                guard let high = ReturnURLValidator.hexValue(bytes[index + 1]),
                    let low = ReturnURLValidator.hexValue(bytes[index + 2])
                else { return false }
                if high == 2 && low == 5 { encodedPercent = true }
            }
            // `;` starts path parameters: Tomcat, Jetty and Spring read `..;` as `..`.
            if byte == UInt8(ascii: ";") { return false }
            index += 1
        }
        for segment in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if segment.elementsEqual([0x2E]) || segment.elementsEqual([0x2E, 0x2E]) { return false }
        }
        // The decoded path must be valid UTF-8: overlong forms (`%c0%ae` for `.`) are how some
        // decoders were tricked into dots and slashes.
        guard bytes.contains(UInt8(ascii: "%")) else {
            return bytes.allSatisfy { $0 < 0x80 } || String(validating: bytes, as: UTF8.self) != nil
        }
        var decoded = decodedOnce(bytes)
        guard String(validating: decoded, as: UTF8.self) != nil else { return false }
        // An encoded `%` (`%252e`, `%25%32%65`, `%25252e`): an upstream that decodes several times
        // must not find an encoded dot, slash, backslash, NUL or semicolon after any decoding.
        var rounds = 0
        while encodedPercent, rounds < 4 {
            rounds += 1
            encodedPercent = false
            for position in decoded.indices where decoded[position] == UInt8(ascii: "%") && position + 2 < decoded.count
            {
                if isEncodedDangerous(decoded[position + 1], decoded[position + 2]) { return false }
                if decoded[position + 1] == UInt8(ascii: "2"), decoded[position + 2] == UInt8(ascii: "5") {
                    encodedPercent = true
                }
            }
            decoded = decodedOnce(decoded)
        }
        return !encodedPercent  // still encoded after four rounds: refused rather than guessed
    }

    /// Percent-decodes once (the input was checked to hold only valid escapes).
    private static func decodedOnce(_ bytes: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = ReturnURLValidator.hexValue(bytes[index + 1]),
                let low = ReturnURLValidator.hexValue(bytes[index + 2])
            {
                result.append(high << 4 | low)
                index += 3
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return result
    }

    /// `%2f` (/), `%2e` (.), `%5c` (\\), `%00`, `%3b` (;) — the two hex digits after a `%`, any case.
    private static func isEncodedDangerous(_ first: UInt8, _ second: UInt8) -> Bool {
        let high = first | 0x20
        let low = second | 0x20
        return (high == UInt8(ascii: "2") && (low == UInt8(ascii: "f") || low == UInt8(ascii: "e")))
            || (high == UInt8(ascii: "5") && low == UInt8(ascii: "c"))
            || (high == UInt8(ascii: "3") && low == UInt8(ascii: "b"))
            || (first == UInt8(ascii: "0") && second == UInt8(ascii: "0"))
    }
}
