/// Secret-holding values print without their secrets, whatever prints them (`"\(value)"`,
/// `String(reflecting:)`, a parent struct's default description — ServiceLifecycle logs every
/// service that way at debug level).
extension KeyRing.Key: CustomStringConvertible, CustomDebugStringConvertible {
    /// The id only.
    public var description: String { "KeyRing.Key(id: \(id), secret: <redacted>)" }
    /// The id only.
    public var debugDescription: String { description }
}

extension KeyRing: CustomStringConvertible, CustomDebugStringConvertible {
    /// The key ids only.
    public var description: String { "KeyRing(keyIDs: \(keyIDs))" }
    /// The key ids only.
    public var debugDescription: String { description }
}

extension OIDCConfiguration: CustomStringConvertible, CustomDebugStringConvertible {
    /// Everything but the client secret (and the client key, which prints its id only).
    public var description: String {
        "OIDCConfiguration(issuer: \(issuer), clientID: \(clientID), clientAuth: \(clientAuth), "
            + "clientSecret: \(clientSecret == nil ? "nil" : "<redacted>"), clientKey: "
            + "\(clientKey.map { "\($0)" } ?? "nil"), scopes: \(scopes), dpop: \(dpop.rawValue))"
    }
    /// As ``description``.
    public var debugDescription: String { description }
}

extension TokenSet: CustomStringConvertible, CustomDebugStringConvertible {
    /// Which tokens are held, never their values.
    public var description: String {
        "TokenSet(accessToken: \(accessToken == nil ? "nil" : "<redacted>"), tokenType: \(tokenType ?? "nil"), "
            + "refreshToken: \(refreshToken == nil ? "nil" : "<redacted>"), idToken: "
            + "\(idToken == nil ? "nil" : "<redacted>"), resourceTokens: \(resourceTokens.count))"
    }
    /// As ``description``.
    public var debugDescription: String { description }
}

extension ResourceToken: CustomStringConvertible, CustomDebugStringConvertible {
    /// The resource only.
    public var description: String { "ResourceToken(resource: \(resource), accessToken: <redacted>)" }
    /// As ``description``.
    public var debugDescription: String { description }
}

extension Session: CustomStringConvertible, CustomDebugStringConvertible {
    /// Who and when, and which tokens are held; never a token, the claims or the logout id.
    public var description: String {
        "Session(issuer: \(issuer), subject: \(subject), createdAt: \(createdAt), renewedAt: \(renewedAt), "
            + "tokens: \(tokens), claims: \(claimsJSON.count) bytes, dpop: \(dpopKey != nil), "
            + "acr: \(authenticationContext ?? "nil"))"
    }
    /// As ``description``.
    public var debugDescription: String { description }
}
