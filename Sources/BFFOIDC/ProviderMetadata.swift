import BFFCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The parts of OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414) the BFF uses.
public struct ProviderMetadata: Sendable, Decodable, Equatable {
    /// Issuer; must equal the configured issuer exactly.
    public var issuer: String
    /// Authorization endpoint.
    public var authorizationEndpoint: String
    /// Token endpoint.
    public var tokenEndpoint: String
    /// JWKS URI.
    public var jwksURI: String
    /// Userinfo endpoint.
    public var userinfoEndpoint: String?
    /// RP-initiated logout endpoint.
    public var endSessionEndpoint: String?
    /// RFC 7009 revocation endpoint.
    public var revocationEndpoint: String?
    /// RFC 9126 PAR endpoint.
    public var pushedAuthorizationRequestEndpoint: String?
    /// RFC 9207: whether `iss` is sent on the authorization response.
    public var authorizationResponseIssParameterSupported: Bool?
    /// Accepted `prompt` values, if listed.
    public var promptValuesSupported: [String]?
    /// PKCE methods, if listed.
    public var codeChallengeMethodsSupported: [String]?
    /// RFC 9449: the DPoP proof algorithms the IdP accepts (advertising DPoP support).
    public var dpopSigningAlgValuesSupported: [String]? = nil

    enum CodingKeys: String, CodingKey {
        case issuer
        case authorizationEndpoint = "authorization_endpoint"
        case tokenEndpoint = "token_endpoint"
        case jwksURI = "jwks_uri"
        case userinfoEndpoint = "userinfo_endpoint"
        case endSessionEndpoint = "end_session_endpoint"
        case revocationEndpoint = "revocation_endpoint"
        case pushedAuthorizationRequestEndpoint = "pushed_authorization_request_endpoint"
        case authorizationResponseIssParameterSupported = "authorization_response_iss_parameter_supported"
        case promptValuesSupported = "prompt_values_supported"
        case codeChallengeMethodsSupported = "code_challenge_methods_supported"
        case dpopSigningAlgValuesSupported = "dpop_signing_alg_values_supported"
    }

    /// Creates metadata (tests, static configuration).
    public init(
        issuer: String, authorizationEndpoint: String, tokenEndpoint: String, jwksURI: String,
        userinfoEndpoint: String? = nil, endSessionEndpoint: String? = nil, revocationEndpoint: String? = nil,
        pushedAuthorizationRequestEndpoint: String? = nil, authorizationResponseIssParameterSupported: Bool? = nil,
        promptValuesSupported: [String]? = nil, codeChallengeMethodsSupported: [String]? = nil
    ) {
        self.issuer = issuer
        self.authorizationEndpoint = authorizationEndpoint
        self.tokenEndpoint = tokenEndpoint
        self.jwksURI = jwksURI
        self.userinfoEndpoint = userinfoEndpoint
        self.endSessionEndpoint = endSessionEndpoint
        self.revocationEndpoint = revocationEndpoint
        self.pushedAuthorizationRequestEndpoint = pushedAuthorizationRequestEndpoint
        self.authorizationResponseIssParameterSupported = authorizationResponseIssParameterSupported
        self.promptValuesSupported = promptValuesSupported
        self.codeChallengeMethodsSupported = codeChallengeMethodsSupported
    }

    /// Whether the IdP advertises DPoP with ES256 (the algorithm of the gateway's DPoP keys).
    public var supportsDPoP: Bool { dpopSigningAlgValuesSupported?.contains("ES256") ?? false }

    /// Checks the issuer and that every endpoint is https (or loopback http when the issuer is).
    func validate(expectedIssuer: String) throws {
        guard issuer == expectedIssuer else {
            throw OIDCError.invalidMetadata("issuer in discovery does not equal the configured issuer")
        }
        let endpoints: [(String, String?)] = [
            ("authorization_endpoint", authorizationEndpoint), ("token_endpoint", tokenEndpoint),
            ("jwks_uri", jwksURI), ("userinfo_endpoint", userinfoEndpoint),
            ("end_session_endpoint", endSessionEndpoint), ("revocation_endpoint", revocationEndpoint),
            ("pushed_authorization_request_endpoint", pushedAuthorizationRequestEndpoint),
        ]
        for (name, value) in endpoints {
            guard let value else { continue }
            guard let url = WebURL(value), url.scheme == "https" || url.isLoopback else {
                throw OIDCError.invalidMetadata("\(name) is not an https URL")
            }
        }
        if let methods = codeChallengeMethodsSupported, !methods.contains("S256") {
            throw OIDCError.invalidMetadata("the IdP does not support PKCE S256")
        }
    }
}
