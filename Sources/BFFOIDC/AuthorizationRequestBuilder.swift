import BFFCore

/// Builds the authorization request (code flow, PKCE S256), directly or through PAR.
public struct AuthorizationRequestBuilder: Sendable {
    let configuration: OIDCConfiguration
    let tokens: TokenEndpointClient

    /// Creates a builder.
    public init(configuration: OIDCConfiguration, tokens: TokenEndpointClient) {
        self.configuration = configuration
        self.tokens = tokens
    }

    /// The parameters of an authorization request for `transaction`.
    public func parameters(for transaction: LoginTransaction, redirectURI: String) -> [(String, String)] {
        var parameters: [(String, String)] = [
            ("response_type", "code"), ("client_id", configuration.clientID), ("redirect_uri", redirectURI),
            ("scope", configuration.scopes.joined(separator: " ")), ("state", transaction.state),
            ("nonce", transaction.nonce), ("code_challenge", transaction.codeChallenge),
            ("code_challenge_method", "S256"),
        ]
        if let prompt = transaction.prompt { parameters.append(("prompt", prompt)) }
        // RFC 9449 §10: the code is bound to the session's DPoP key.
        if let key = transaction.dpopKey { parameters.append(("dpop_jkt", key.thumbprint)) }
        // Step-up (OpenID Connect Core §3.1.2.1); through PAR when the IdP offers it, so the browser
        // cannot edit them.
        if !transaction.acrValues.isEmpty {
            parameters.append(("acr_values", transaction.acrValues.joined(separator: " ")))
        }
        if let maxAge = transaction.maxAge { parameters.append(("max_age", String(maxAge))) }
        for (name, value) in configuration.authorizeParameters.sorted(by: { $0.key < $1.key }) {
            parameters.append((name, value))
        }
        return parameters
    }

    /// The URL to send the browser to.
    public func url(for transaction: LoginTransaction, redirectURI: String, metadata: ProviderMetadata) async throws
        -> String
    {
        let parameters = parameters(for: transaction, redirectURI: redirectURI)
        let endpoint = metadata.authorizationEndpoint
        let separator = endpoint.contains("?") ? "&" : "?"
        if let par = metadata.pushedAuthorizationRequestEndpoint,
            configuration.usePAR.isEnabled(advertised: true)
        {
            let requestURI = try await tokens.pushAuthorizationRequest(endpoint: par, parameters: parameters)
            return endpoint + separator
                + FormEncoding.encode([("client_id", configuration.clientID), ("request_uri", requestURI)])
        }
        if configuration.usePAR == .on { throw OIDCError.unsupported("pushed authorization requests") }
        return endpoint + separator + FormEncoding.encode(parameters)
    }
}
