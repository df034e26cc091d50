import BFFCore

/// A user of the development IdP.
public struct DevUser: Sendable, Hashable {
    /// Login name (also `preferred_username`).
    public var username: String
    /// Password (plain: this is a development tool).
    public var password: String
    /// `sub` claim.
    public var subject: String
    /// `name` claim.
    public var name: String
    /// `email` claim.
    public var email: String

    /// Creates a user.
    public init(username: String, password: String, subject: String, name: String, email: String) {
        self.username = username
        self.password = password
        self.subject = subject
        self.name = name
        self.email = email
    }

    /// The default users: alice/alice and bob/bob.
    public static let defaults: [DevUser] = [
        DevUser(
            username: "alice", password: "alice", subject: "alice-7f3b", name: "Alice Smith", email: "alice@example.com"
        ),
        DevUser(username: "bob", password: "bob", subject: "bob-91c2", name: "Bob Jones", email: "bob@example.com"),
    ]
}

/// A client registered at the development IdP.
public struct DevClient: Sendable, Hashable {
    /// `client_id`.
    public var clientID: String
    /// `client_secret` (client_secret_basic and client_secret_post are both accepted); empty =
    /// no secret (the client must use `private_key_jwt`).
    public var clientSecret: String
    /// Public keys for `private_key_jwt` (RFC 7523); empty = the method is refused for this client.
    public var publicKeys: [JWSPublicKey]
    /// Exact redirect URIs.
    public var redirectURIs: [String]
    /// Exact post-logout redirect URIs.
    public var postLogoutRedirectURIs: [String]
    /// Where logout tokens are POSTed when a session this client took part in ends (back-channel logout).
    public var backchannelLogoutURI: String?
    /// Loaded in an iframe (with `iss` and `sid`) by the end_session page when a session this
    /// client took part in ends (OpenID Connect Front-Channel Logout 1.0).
    public var frontchannelLogoutURI: String?

    /// Creates a client.
    public init(
        clientID: String, clientSecret: String, redirectURIs: [String], postLogoutRedirectURIs: [String],
        backchannelLogoutURI: String? = nil, frontchannelLogoutURI: String? = nil, publicKeys: [JWSPublicKey] = []
    ) {
        self.publicKeys = publicKeys
        self.frontchannelLogoutURI = frontchannelLogoutURI
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.redirectURIs = redirectURIs
        self.postLogoutRedirectURIs = postLogoutRedirectURIs
        self.backchannelLogoutURI = backchannelLogoutURI
    }
}

/// Settings of the development IdP.
public struct DevIdentityProviderConfiguration: Sendable {
    /// The issuer: `http://host:port` the IdP is reached at (no trailing slash).
    public var issuer: String
    /// Users who can log in.
    public var users: [DevUser]
    /// Registered clients.
    public var clients: [DevClient]
    /// Access-token lifetime in seconds (300 by default; tests use 2 to force refreshes).
    public var accessTokenLifetime: Int64
    /// ID-token lifetime in seconds.
    public var idTokenLifetime: Int64
    /// Refresh-token lifetime in seconds.
    public var refreshTokenLifetime: Int64
    /// Authorization-code lifetime in seconds.
    public var codeLifetime: Int64
    /// Algorithm of ID and access tokens: `RS256` (default) or `ES256`. Both keys are published.
    public var signingAlgorithm: String
    /// Whether to put `sid` into ID tokens (true by default; false imitates IdPs without sessions).
    public var issueSessionID: Bool
    /// Whether to send RFC 9207 `iss` on the authorization response (and advertise it).
    public var sendIssParameter: Bool
    /// Resource indicators (RFC 8707) the token endpoint issues access tokens for, with the
    /// resource as their `aud`; any other `resource` is refused with `invalid_target`.
    public var resources: [String] = []
    /// Whether the token endpoint demands a `DPoP-Nonce` in proofs (RFC 9449 §8): a proof without
    /// the current nonce gets 400 `use_dpop_nonce` with the nonce.
    public var dpopNonce = false
    /// Audiences the token-exchange grant (RFC 8693) issues tokens for (besides ``resources``).
    public var exchangeAudiences: [String] = ["orders"]
    /// Scopes the token-exchange grant may add to the subject token's (policy; `orders.write` is not).
    public var exchangeScopes: [String] = ["orders.read"]
    /// The one-time code that raises a login to `acr` `mfa` (step-up tests); without it, `pwd`.
    public var oneTimeCode = "246810"

    /// Creates settings with the defaults.
    public init(
        issuer: String, users: [DevUser] = DevUser.defaults, clients: [DevClient], accessTokenLifetime: Int64 = 300,
        idTokenLifetime: Int64 = 300, refreshTokenLifetime: Int64 = 86400, codeLifetime: Int64 = 60,
        signingAlgorithm: String = "RS256", issueSessionID: Bool = true, sendIssParameter: Bool = true
    ) {
        self.issuer = issuer
        self.users = users
        self.clients = clients
        self.accessTokenLifetime = accessTokenLifetime
        self.idTokenLifetime = idTokenLifetime
        self.refreshTokenLifetime = refreshTokenLifetime
        self.codeLifetime = codeLifetime
        self.signingAlgorithm = signingAlgorithm
        self.issueSessionID = issueSessionID
        self.sendIssParameter = sendIssParameter
    }
}
