/// Why an OIDC operation failed. Descriptions never contain tokens, codes or secrets.
public struct OIDCError: Error, CustomStringConvertible, Equatable {
    enum Base: Equatable {
        case unavailable(String)
        case invalidMetadata(String)
        case invalidToken(String)
        case oauth(String)
        case unsupported(String)
    }
    let base: Base

    /// The IdP could not be reached or answered with a server error.
    public static func unavailable(_ what: String) -> OIDCError { OIDCError(base: .unavailable(what)) }
    /// Discovery or JWKS content was unusable.
    public static func invalidMetadata(_ what: String) -> OIDCError { OIDCError(base: .invalidMetadata(what)) }
    /// A token failed validation.
    public static func invalidToken(_ why: String) -> OIDCError { OIDCError(base: .invalidToken(why)) }
    /// The IdP answered with an OAuth error code (`invalid_grant`, …).
    public static func oauth(_ code: String) -> OIDCError { OIDCError(base: .oauth(code)) }
    /// A feature the IdP does not offer.
    public static func unsupported(_ what: String) -> OIDCError { OIDCError(base: .unsupported(what)) }

    /// Whether the IdP was unreachable (as opposed to saying no).
    public var isUnavailable: Bool {
        if case .unavailable = base { return true }
        return false
    }

    /// The OAuth error code, if the IdP sent one.
    public var oauthCode: String? {
        if case .oauth(let code) = base { return code }
        return nil
    }

    /// Whether a token failed validation.
    public var isInvalidToken: Bool {
        if case .invalidToken = base { return true }
        return false
    }

    /// A description safe to log.
    public var description: String {
        switch base {
        case .unavailable(let what): return "identity provider unavailable: \(what)"
        case .invalidMetadata(let what): return "invalid identity provider metadata: \(what)"
        case .invalidToken(let why): return "invalid token: \(why)"
        case .oauth(let code): return "identity provider error: \(code)"
        case .unsupported(let what): return "not supported by the identity provider: \(what)"
        }
    }
}
