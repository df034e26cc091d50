import BFFCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension JWSPrivateKey {
    /// Loads PEM text or JWK JSON text (a key, or a JWKS holding one key).
    public init(text: String, algorithm: JWSAlgorithm? = nil) throws(JWSKeyError) {
        let trimmed = text.drop(while: { $0.isWhitespace })
        if trimmed.hasPrefix("{") {
            guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(trimmed.utf8)) else {
                throw JWSKeyError("the JWK is not a JSON object")
            }
            try self.init(jwk: object, algorithm: algorithm)
        } else {
            try self.init(pem: String(trimmed), algorithm: algorithm)
        }
    }
}

/// RFC 7523 client assertions (`private_key_jwt`, OpenID Connect Core §9).
public enum ClientAssertion {
    /// `client_assertion_type`.
    public static let type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    /// Lifetime of an assertion, seconds.
    public static let lifetime: Int64 = 60

    /// A signed assertion: `iss` = `sub` = the client id, `aud` = `audience` (the token endpoint),
    /// `iat`, `exp` one minute later, a random `jti`.
    public static func make(
        key: JWSPrivateKey, clientID: String, audience: String, now: UnixTime, random: any SecureRandom
    ) throws(JWSKeyError) -> String {
        let header = "{\"alg\":\"\(key.algorithm.rawValue)\",\"kid\":\(JSONText.quote(key.keyID)),\"typ\":\"JWT\"}"
        let client = JSONText.quote(clientID)
        let payload =
            "{\"iss\":\(client),\"sub\":\(client),\"aud\":\(JSONText.quote(audience)),\"iat\":\(now),"
            + "\"exp\":\(now + lifetime),\"jti\":\"\(random.token(byteCount: 16))\"}"
        return try key.sign(header: header, payload: payload)
    }
}
