/// How the BFF authenticates itself at the token endpoint.
public struct ClientAuthentication: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable {
        case basic = "client_secret_basic"
        case post = "client_secret_post"
        case privateKeyJWT = "private_key_jwt"
    }
    let base: Base
    /// HTTP Basic with the client id and secret (default).
    public static let clientSecretBasic = ClientAuthentication(base: .basic)
    /// `client_id` and `client_secret` in the form body.
    public static let clientSecretPost = ClientAuthentication(base: .post)
    /// A client assertion signed with ``OIDCConfiguration/clientKey`` (RFC 7523).
    public static let privateKeyJWT = ClientAuthentication(base: .privateKeyJWT)
    /// Parses the configuration name.
    public init?(name: String) {
        guard let base = Base(rawValue: name) else { return nil }
        self.base = base
    }
    init(base: Base) { self.base = base }
    /// The configuration name.
    public var description: String { base.rawValue }
}

/// A tri-state switch: `auto` follows what the IdP advertises.
public struct AutoSwitch: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable {
        case auto
        case on = "true"
        case off = "false"
    }
    let base: Base
    /// Decide from the IdP's metadata.
    public static let auto = AutoSwitch(base: .auto)
    /// Always.
    public static let on = AutoSwitch(base: .on)
    /// Never.
    public static let off = AutoSwitch(base: .off)
    /// Parses `auto`, `true` or `false`.
    public init?(name: String) {
        guard let base = Base(rawValue: name.lowercased()) else { return nil }
        self.base = base
    }
    init(base: Base) { self.base = base }
    /// Resolves against whether the IdP advertises the feature.
    public func isEnabled(advertised: Bool) -> Bool {
        switch base {
        case .auto: return advertised
        case .on: return true
        case .off: return false
        }
    }
    /// The configuration name.
    public var description: String { base.rawValue }
}

/// `oidc.clientAssertionAudience`: the `aud` of `private_key_jwt` assertions.
public enum ClientAssertionAudience: String, Sendable, Hashable, CaseIterable {
    /// The URL of the endpoint called (token, PAR, revocation): what OpenID Connect Core §9 asks
    /// for at the token endpoint, and what Glewlwyd requires everywhere.
    case endpoint
    /// The token endpoint for every call.
    case tokenEndpoint
    /// The issuer identifier (RFC 7523bis; Auth0).
    case issuer
}

/// `oidc.dpop`: sender-constrained tokens (RFC 9449).
public enum DPoPMode: String, Sendable, Hashable, CaseIterable {
    /// Bearer tokens (the default).
    case off
    /// DPoP when the IdP advertises `dpop_signing_alg_values_supported` with ES256.
    case auto
    /// DPoP always; a login whose tokens come back unbound fails.
    case required

    /// Whether logins use DPoP with an IdP that does (`advertised`) or does not advertise it.
    public func isEnabled(advertised: Bool) -> Bool {
        switch self {
        case .off: return false
        case .auto: return advertised
        case .required: return true
        }
    }
}

/// `oidc:` settings.
public struct OIDCConfiguration: Sendable {
    /// Issuer URL; discovery is read from `{issuer}/.well-known/openid-configuration`.
    public var issuer: String
    /// Client id.
    public var clientID: String
    /// Client secret (resolved; never logged).
    public var clientSecret: String?
    /// Token endpoint authentication, `client_secret_basic` by default.
    public var clientAuth: ClientAuthentication
    /// The private key that signs client assertions (`private_key_jwt`); never logged.
    public var clientKey: JWSPrivateKey?
    /// The `aud` of client assertions: the endpoint called by default.
    public var clientAssertionAudience: ClientAssertionAudience = .endpoint
    /// Requested scopes, `openid profile email offline_access` by default.
    public var scopes: [String]
    /// Redirect URI path, `/signin-oidc` by default.
    public var callbackPath: String
    /// Post-logout redirect URI path, `/signout-callback-oidc` by default.
    public var postLogoutCallbackPath: String
    /// Extra static authorize parameters (e.g. Auth0's `audience`).
    public var authorizeParameters: [String: String]
    /// Forced end-session endpoint; nil = from discovery.
    public var endSessionEndpoint: String?
    /// Forced revocation endpoint; nil = from discovery or RFC 8414 metadata.
    public var revocationEndpoint: String?
    /// Pushed authorization requests: `auto` (when advertised) by default.
    public var usePAR: AutoSwitch
    /// RFC 9207 `iss` on the callback: `auto` (required when advertised) by default.
    public var requireIssParameter: AutoSwitch
    /// Accepted ID-token algorithms; `RS256 PS256 ES256 EdDSA` by default. `none` and HMAC are never accepted.
    public var signingAlgorithms: [String]
    /// Tolerated clock difference, 60 s by default.
    public var clockSkew: Duration
    /// Also fetch userinfo claims at login; off by default.
    public var fetchUserInfo: Bool
    /// Timeout of each back-channel call to the IdP, 10 s by default.
    public var requestTimeout: Duration
    /// DPoP-bound tokens (RFC 9449): `off` by default.
    public var dpop: DPoPMode = .off

    /// Creates OIDC settings with the defaults.
    public init(
        issuer: String = "", clientID: String = "", clientSecret: String? = nil,
        clientAuth: ClientAuthentication = .clientSecretBasic, clientKey: JWSPrivateKey? = nil,
        scopes: [String] = ["openid", "profile", "email", "offline_access"],
        callbackPath: String = "/signin-oidc", postLogoutCallbackPath: String = "/signout-callback-oidc",
        authorizeParameters: [String: String] = [:], endSessionEndpoint: String? = nil,
        revocationEndpoint: String? = nil, usePAR: AutoSwitch = .auto, requireIssParameter: AutoSwitch = .auto,
        signingAlgorithms: [String] = ["RS256", "PS256", "ES256", "EdDSA"], clockSkew: Duration = .seconds(60),
        fetchUserInfo: Bool = false, requestTimeout: Duration = .seconds(10)
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.clientAuth = clientAuth
        self.clientKey = clientKey
        self.scopes = scopes
        self.callbackPath = callbackPath
        self.postLogoutCallbackPath = postLogoutCallbackPath
        self.authorizeParameters = authorizeParameters
        self.endSessionEndpoint = endSessionEndpoint
        self.revocationEndpoint = revocationEndpoint
        self.usePAR = usePAR
        self.requireIssParameter = requireIssParameter
        self.signingAlgorithms = signingAlgorithms
        self.clockSkew = clockSkew
        self.fetchUserInfo = fetchUserInfo
        self.requestTimeout = requestTimeout
    }
}
