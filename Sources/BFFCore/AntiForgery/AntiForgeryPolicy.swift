/// The anti-forgery rule for BFF API calls (SPEC §5).
///
/// A request passes only if it carries the configured header with exactly the configured value,
/// does not say `Sec-Fetch-Site: cross-site`, and carries no `Origin` other than the public origin.
public struct AntiForgeryPolicy: Sendable {
    /// The header name (compared case-insensitively by the HTTP layer).
    public let headerName: String
    /// The exact value required.
    public let headerValue: String
    /// The public origin (`scheme://host[:port]`).
    public let publicOrigin: String

    /// Creates a policy.
    public init(configuration: AntiForgeryConfiguration, publicOrigin: String) {
        self.headerName = configuration.headerName
        self.headerValue = configuration.headerValue
        self.publicOrigin = WebURL(publicOrigin)?.origin ?? publicOrigin
    }

    /// The verdict for one request.
    /// - Parameters:
    ///   - header: every value of the anti-forgery header (a repeated header fails).
    ///   - secFetchSite: the `Sec-Fetch-Site` value, if present.
    ///   - origin: every `Origin` value.
    public func allows(header: [String], secFetchSite: String?, origin: [String]) -> Bool {
        allows(header: header, secFetchSite: secFetchSite.map { [$0] } ?? [], origin: origin)
    }

    /// The verdict with every `Sec-Fetch-Site` value: browsers send at most one, so several are
    /// refused like a cross-site one.
    public func allows(header: [String], secFetchSite: [String], origin: [String]) -> Bool {
        guard header.count == 1, header[0] == headerValue else { return false }
        if Self.saysCrossSite(secFetchSite) { return false }
        return isSameOrigin(origin)
    }

    static func saysCrossSite(_ secFetchSite: [String]) -> Bool {
        secFetchSite.count > 1 || secFetchSite.first.map { $0.lowercased() == "cross-site" } ?? false
    }

    /// Whether the `Origin` values, if any, all name the public origin.
    public func isSameOrigin(_ origin: [String]) -> Bool {
        for value in origin {
            guard let url = WebURL(value), url.path.isEmpty, url.origin == publicOrigin else { return false }
        }
        return true
    }

    /// Whether a request is visibly cross-site (used to refuse logout without ending anything).
    public func isCrossSite(secFetchSite: String?, origin: [String]) -> Bool {
        isCrossSite(secFetchSite: secFetchSite.map { [$0] } ?? [], origin: origin)
    }

    /// ``isCrossSite(secFetchSite:origin:)`` with every `Sec-Fetch-Site` value (several count as cross-site).
    public func isCrossSite(secFetchSite: [String], origin: [String]) -> Bool {
        Self.saysCrossSite(secFetchSite) || !isSameOrigin(origin)
    }
}
