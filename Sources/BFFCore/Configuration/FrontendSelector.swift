/// How a request is matched to one frontend of several (SPEC §11.3 `frontends[].match`).
public struct FrontendMatch: Sendable, Hashable {
    /// The `Host` header's value, compared exactly (case-insensitively, port included when the
    /// frontend is not on a default port); nil matches any host.
    public var host: String?
    /// A path prefix such as `/app1` (no trailing slash); nil matches any path. It matches the
    /// prefix itself and everything below it (`/app1/x`), never `/app10`.
    public var pathPrefix: String?

    /// A match on `host` and/or `pathPrefix`; with neither, it matches every request.
    public init(host: String? = nil, pathPrefix: String? = nil) {
        self.host = host?.lowercased()
        self.pathPrefix = pathPrefix.flatMap { $0 == "/" ? nil : $0 }
    }

    /// Whether `request` is this frontend's, and how specifically: host and prefix (the longer the
    /// prefix, the more specific) beat host alone, which beats a prefix alone, which beats a match on
    /// everything. Nil when it does not match.
    /// Inlinable, like ``FrontendSelector/select(host:path:)``: it runs for every API call.
    @inlinable
    func specificity(host requestHost: some StringProtocol, path: some StringProtocol) -> Int? {
        var score = 0
        if let host {
            guard requestHost.count == host.count, requestHost.lowercased() == host else { return nil }
            score += 1 << 20
        }
        if let pathPrefix {
            guard path.hasPrefix(pathPrefix) else { return nil }
            let rest = path.dropFirst(pathPrefix.count)
            guard rest.isEmpty || rest.first == "/" || rest.first == "?" else { return nil }
            score += 1 + pathPrefix.utf8.count
        }
        return score
    }
}

/// Picks the frontend of a request: the most specific match wins (host + path prefix → host →
/// path prefix → a frontend that matches everything); none means the request belongs to no
/// frontend (`urn:bff:problem:no-frontend`), never to another frontend's sessions.
public struct FrontendSelector: Sendable {
    @usableFromInline let matches: [FrontendMatch]

    public init(_ matches: [FrontendMatch]) {
        self.matches = matches
    }

    /// The index of the frontend serving a request with `host` (the `Host` header, nil when
    /// absent) and `path` (the request target's path); nil when none matches. Ties (which
    /// configuration validation refuses) go to the frontend listed first.
    /// Inlinable: specialized for the caller's string types (unspecialized, every call looked up
    /// generic metadata and went through witness tables for each string operation).
    @inlinable
    public func select(host: (some StringProtocol)?, path: some StringProtocol) -> Int? {
        var best: (index: Int, score: Int)?
        for (index, match) in matches.enumerated() {
            guard let score = match.specificity(host: host ?? "", path: path) else { continue }
            if best == nil || score > best?.score ?? 0 { best = (index, score) }
        }
        return best?.index
    }
}
