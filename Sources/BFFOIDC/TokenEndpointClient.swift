import BFFCore
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A successful token endpoint answer.
public struct TokenResponse: Sendable, Equatable {
    /// `access_token`.
    public var accessToken: String
    /// `token_type`.
    public var tokenType: String?
    /// `expires_in`, seconds.
    public var expiresIn: Int64?
    /// `refresh_token`, if any.
    public var refreshToken: String?
    /// `id_token`, if any.
    public var idToken: String?
    /// `scope`, if returned.
    public var scope: String?

    /// Whether the access token is DPoP-bound (`token_type` `DPoP`, RFC 9449 §5).
    public var isDPoPBound: Bool { tokenType?.lowercased() == "dpop" }

    /// Creates a token response.
    public init(
        accessToken: String, tokenType: String? = nil, expiresIn: Int64? = nil, refreshToken: String? = nil,
        idToken: String? = nil, scope: String? = nil
    ) {
        self.accessToken = accessToken
        self.tokenType = tokenType
        self.expiresIn = expiresIn
        self.refreshToken = refreshToken
        self.idToken = idToken
        self.scope = scope
    }
}

/// Talks to the token, PAR, userinfo and revocation endpoints with the configured client
/// authentication. Never logs request or response bodies.
public struct TokenEndpointClient: Sendable {
    /// The provider whose endpoints it calls.
    public let provider: OIDCProvider
    let http: any OIDCHTTPClient
    /// The OIDC settings (client authentication, DPoP).
    public let configuration: OIDCConfiguration
    let random: any SecureRandom
    let clientAccepted = ClientAcceptance()
    let dpopNonce = LatestNonce()

    /// Creates a client.
    public init(
        provider: OIDCProvider, http: any OIDCHTTPClient, configuration: OIDCConfiguration,
        random: any SecureRandom = SystemSecureRandom()
    ) {
        self.provider = provider
        self.http = http
        self.configuration = configuration
        self.random = random
    }

    /// Exchanges an authorization code (with its PKCE verifier), with a DPoP proof of `dpop`.
    public func exchange(code: String, codeVerifier: String, redirectURI: String, dpop: DPoPKey? = nil) async throws
        -> TokenResponse
    {
        try await tokenRequest(
            [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
                ("code_verifier", codeVerifier),
            ], dpop: dpop)
    }

    /// Redeems a refresh token (with a DPoP proof of `dpop` for a bound session).
    public func refresh(
        refreshToken: String, scope: String? = nil, resource: String? = nil, dpop: DPoPKey? = nil
    ) async throws -> TokenResponse {
        var form = [("grant_type", "refresh_token"), ("refresh_token", refreshToken)]
        if let scope { form.append(("scope", scope)) }
        if let resource { form.append(("resource", resource)) }
        return try await tokenRequest(form, dpop: dpop)
    }

    /// Exchanges `subjectToken` (the user's access token) for one aimed at another API (RFC 8693),
    /// with a DPoP proof of `dpop` for a bound session.
    public func exchange(
        subjectToken: String, audience: String?, scopes: [String], resource: String?, dpop: DPoPKey? = nil
    ) async throws -> TokenResponse {
        var form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), ("subject_token", subjectToken),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ]
        if let audience { form.append(("audience", audience)) }
        if !scopes.isEmpty { form.append(("scope", scopes.joined(separator: " "))) }
        if let resource { form.append(("resource", resource)) }
        return try await tokenRequest(form, dpop: dpop)
    }

    /// Gets a client-credentials token.
    public func clientCredentials(scope: String?, resource: String?) async throws -> TokenResponse {
        var form = [("grant_type", "client_credentials")]
        if let scope { form.append(("scope", scope)) }
        if let resource { form.append(("resource", resource)) }
        return try await tokenRequest(form)
    }

    /// Pushes an authorization request (RFC 9126); returns `request_uri`.
    public func pushAuthorizationRequest(endpoint: String, parameters: [(String, String)]) async throws -> String {
        let response = try await post(endpoint, form: parameters)
        guard response.status == 201 || response.status == 200 else { throw error(from: response) }
        guard let object = decodeObject(response.body), let requestURI = object["request_uri"]?.stringValue else {
            throw OIDCError.invalidMetadata("PAR response without request_uri")
        }
        return requestURI
    }

    /// Revokes a token (RFC 7009). Returns whether the IdP accepted the request.
    @discardableResult
    public func revoke(token: String, hint: String) async throws -> Bool {
        guard let endpoint = await provider.revocationEndpoint() else { throw OIDCError.unsupported("revocation") }
        let response = try await post(endpoint, form: [("token", token), ("token_type_hint", hint)])
        return response.status == 200
    }

    /// Fetches userinfo claims with an access token (DPoP-bound to `dpop`, if given).
    public func userInfo(accessToken: String, dpop: DPoPKey? = nil) async throws -> [String: JSONValue] {
        guard let endpoint = try await provider.metadata().userinfoEndpoint else {
            throw OIDCError.unsupported("userinfo")
        }
        var headers = [("authorization", "Bearer \(accessToken)"), ("accept", "application/json")]
        if let dpop {
            headers[0] = ("authorization", "DPoP \(accessToken)")
            headers.append(
                (
                    "dpop",
                    dpop.proof(
                        method: "GET", url: endpoint, accessToken: accessToken, nonce: nil, now: provider.time.now,
                        random: random)
                ))
        }
        let response: OIDCHTTPResponse
        do {
            response = try await http.send(
                OIDCHTTPRequest(url: endpoint, headers: headers), timeout: configuration.requestTimeout)
        } catch {
            throw OIDCError.unavailable("userinfo request failed")
        }
        guard response.status == 200, let object = decodeObject(response.body) else { throw error(from: response) }
        return object
    }

    func tokenRequest(_ form: [(String, String)], dpop: DPoPKey? = nil) async throws -> TokenResponse {
        let endpoint = try await provider.metadata().tokenEndpoint
        var response = try await post(endpoint, form: form, dpop: dpop)
        // RFC 9449 §8: an IdP that wants a nonce answers use_dpop_nonce with one; retried once.
        if let dpop, response.status == 400 || response.status == 401,
            decodeObject(response.body)?["error"]?.stringValue == "use_dpop_nonce",
            let nonce = response.header("dpop-nonce"), UpstreamChallenge.isValidNonce(nonce)
        {
            dpopNonce.set(nonce)
            response = try await post(endpoint, form: form, dpop: dpop)
        }
        guard response.status == 200 else { throw error(from: response) }
        if dpop != nil, let nonce = response.header("dpop-nonce"), UpstreamChallenge.isValidNonce(nonce) {
            dpopNonce.set(nonce)
        }
        guard let object = decodeObject(response.body), let accessToken = object["access_token"]?.stringValue,
            !accessToken.isEmpty
        else { throw OIDCError.invalidMetadata("token response without access_token") }
        // It goes into an `Authorization` header: visible ASCII only (RFC 6750 b64token is a subset).
        guard accessToken.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw OIDCError.invalidMetadata("token response with an access_token that is not visible ASCII")
        }
        return TokenResponse(
            accessToken: accessToken, tokenType: object["token_type"]?.stringValue,
            // Clamped to a year: an absurd value must not overflow `now + expires_in` anywhere.
            expiresIn: (object["expires_in"]?.int64Value ?? object["expires_in"]?.stringValue.flatMap { Int64($0) })
                .map { min(max($0, 0), 31_536_000) },
            refreshToken: object["refresh_token"]?.stringValue, idToken: object["id_token"]?.stringValue,
            scope: object["scope"]?.stringValue)
    }

    func post(_ endpoint: String, form: [(String, String)], dpop: DPoPKey? = nil) async throws -> OIDCHTTPResponse {
        var form = form
        var headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")]
        if let dpop {
            headers.append(
                (
                    "dpop",
                    dpop.proof(
                        method: "POST", url: endpoint, accessToken: nil, nonce: dpopNonce.value,
                        now: provider.time.now, random: random)
                ))
        }
        let secret = configuration.clientSecret ?? ""
        if configuration.clientAuth == .privateKeyJWT {
            guard let key = configuration.clientKey else {
                throw OIDCError.unsupported("private_key_jwt without a client key")
            }
            // By default the audience is the endpoint called: the token endpoint as OpenID Connect
            // Core §9 asks; for PAR (RFC 9126 §2 accepts it) and revocation the endpoint itself,
            // which Glewlwyd requires (it checks aud against the URL of each endpoint).
            let audience: String
            switch configuration.clientAssertionAudience {
            case .endpoint: audience = endpoint
            case .tokenEndpoint: audience = try await provider.metadata().tokenEndpoint
            case .issuer: audience = try await provider.metadata().issuer
            }
            let assertion: String
            do {
                assertion = try ClientAssertion.make(
                    key: key, clientID: configuration.clientID, audience: audience, now: provider.time.now,
                    random: random)
            } catch {
                throw OIDCError.unsupported("client assertion could not be signed: \(error.reason)")
            }
            form.append(("client_id", configuration.clientID))
            form.append(("client_assertion_type", ClientAssertion.type))
            form.append(("client_assertion", assertion))
        } else if configuration.clientAuth == .clientSecretPost {
            form.append(("client_id", configuration.clientID))
            form.append(("client_secret", secret))
        } else {
            // RFC 6749 §2.3.1: both parts are form-encoded before base64.
            let credentials = FormEncoding.escape(configuration.clientID) + ":" + FormEncoding.escape(secret)
            headers.append(("authorization", "Basic " + base64(Array(credentials.utf8))))
        }
        do {
            return try await http.send(
                OIDCHTTPRequest(
                    method: "POST", url: endpoint, headers: headers, body: Array(FormEncoding.encode(form).utf8)),
                timeout: configuration.requestTimeout)
        } catch {
            throw OIDCError.unavailable("request to the identity provider failed")
        }
    }

    func error(from response: OIDCHTTPResponse) -> OIDCError {
        if let code = decodeObject(response.body)?["error"]?.stringValue, response.status < 500 {
            return .oauth(code.count <= 64 ? code : "invalid_response")
        }
        if response.status >= 500 || response.status == 429 {
            return .unavailable("identity provider answered \(response.status)")
        }
        return .oauth("http_\(response.status)")
    }

    func decodeObject(_ body: [UInt8]) -> [String: JSONValue]? {
        try? JSONDecoder().decode([String: JSONValue].self, from: Data(body))
    }
}

/// The last `DPoP-Nonce` the token endpoint gave.
final class LatestNonce: Sendable {
    private let latest = Mutex<String?>(nil)
    var value: String? { latest.withLock { $0 } }
    func set(_ nonce: String) { latest.withLock { $0 = nonce } }
}

/// Standard base64 with padding.
func base64(_ bytes: [UInt8]) -> String {
    var text = Base64URL.encode(bytes).replacingBase64URLAlphabet()
    while text.utf8.count % 4 != 0 { text += "=" }
    return text
}

extension String {
    func replacingBase64URLAlphabet() -> String {
        String(
            decoding: utf8.map {
                $0 == UInt8(ascii: "-") ? UInt8(ascii: "+") : $0 == UInt8(ascii: "_") ? UInt8(ascii: "/") : $0
            },
            as: UTF8.self)
    }
}
