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
