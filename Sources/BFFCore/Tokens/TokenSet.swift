/// The tokens the BFF holds for a user session.
public struct TokenSet: Sendable, Equatable {
    /// The access token sent to APIs (never to the browser).
    public var accessToken: String?
    /// When the access token expires (from `expires_in`), if known.
    public var accessTokenExpiresAt: UnixTime?
    /// `token_type` as returned (`Bearer`, `DPoP`).
    public var tokenType: String?
    /// The refresh token, if the IdP issued one.
    public var refreshToken: String?
    /// The raw ID token (kept for `id_token_hint` at logout).
    public var idToken: String?
    /// Access tokens for particular resources (RFC 8707), obtained with the refresh token for API
    /// routes that name a `resource`; kept apart from ``accessToken``.
    public var resourceTokens: [ResourceToken] = []

    /// The token held for `resource`, if any.
    public func token(for resource: String) -> ResourceToken? {
        resourceTokens.first { $0.resource == resource }
    }

    /// Stores `token`, replacing the one for the same resource.
    public mutating func store(_ token: ResourceToken) {
        resourceTokens.removeAll { $0.resource == token.resource }
        resourceTokens.append(token)
    }

    /// Creates a token set.
    public init(
        accessToken: String? = nil, accessTokenExpiresAt: UnixTime? = nil, tokenType: String? = nil,
        refreshToken: String? = nil, idToken: String? = nil
    ) {
        self.accessToken = accessToken
        self.accessTokenExpiresAt = accessTokenExpiresAt
        self.tokenType = tokenType
        self.refreshToken = refreshToken
        self.idToken = idToken
    }
}

/// An access token obtained for one resource (RFC 8707 resource indicator).
public struct ResourceToken: Sendable, Equatable {
    /// The resource indicator it was requested for.
    public var resource: String
    /// The access token.
    public var accessToken: String
    /// When it expires, if known.
    public var expiresAt: UnixTime?
    /// `token_type` as returned (`DPoP` for a bound one), if known.
    public var tokenType: String?

    /// Creates one.
    public init(resource: String, accessToken: String, expiresAt: UnixTime?, tokenType: String? = nil) {
        self.resource = resource
        self.accessToken = accessToken
        self.expiresAt = expiresAt
        self.tokenType = tokenType
    }
}
