import Crypto

/// A DPoP key pair (RFC 9449): one per session, ES256, with its proof header made once.
///
/// Sealed into the server-side session (or the sealed session cookie) as its 32-byte private
/// scalar; it never leaves the gateway. ``proof(method:url:accessToken:nonce:now:random:)`` is on
/// the API hot path: one ECDSA signature and a few string appends.
public final class DPoPKey: Sendable, Equatable, CustomStringConvertible {
    /// The signing key.
    public let key: JWSPrivateKey
    /// The RFC 7638 thumbprint of the public key: `dpop_jkt`, and `cnf.jkt` in bound tokens.
    public let thumbprint: String
    /// The private scalar (what is sealed).
    public let scalar: [UInt8]
    /// base64url of `{"typ":"dpop+jwt","alg":"ES256","jwk":{…}}`.
    let headerSegment: String

    /// A key from its sealed scalar.
    public convenience init(scalar: [UInt8]) throws(JWSKeyError) {
        self.init(key: try JWSPrivateKey(p256Scalar: scalar), scalar: scalar)
    }

    init(key: JWSPrivateKey, scalar: [UInt8]) {
        self.key = key
        self.scalar = scalar
        thumbprint = key.publicKey.thumbprint
        headerSegment = Base64URL.encode(
            "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":\(key.publicKey.canonicalJSON)}".utf8)
    }

    /// A new random key.
    public static func generate() -> DPoPKey {
        let key = P256.Signing.PrivateKey()
        return DPoPKey(key: JWSPrivateKey(p256: key), scalar: Array(key.rawRepresentation))
    }

    /// A proof for one request: `htm`, `htu` (the target URI without query and fragment), `iat`,
    /// a random `jti`, `ath` when an access token goes with it, `nonce` when the server gave one.
    public func proof(
        method: String, url: String, accessToken: String?, nonce: String?, now: UnixTime, random: any SecureRandom
    ) -> String {
        var payload = "{\"jti\":\"" + random.token(byteCount: 16) + "\",\"htm\":" + JSONText.quote(method)
        payload += ",\"htu\":" + JSONText.quote(Self.targetURI(url)) + ",\"iat\":" + String(now)
        if let accessToken {
            payload += ",\"ath\":\"" + Base64URL.encode(Array(SHA256.hash(data: Array(accessToken.utf8)))) + "\""
        }
        if let nonce { payload += ",\"nonce\":" + JSONText.quote(nonce) }
        payload += "}"
        let signingInput = headerSegment + "." + Base64URL.encode(payload.utf8)
        // ES256 over a valid key does not fail; an empty signature would be refused by the server.
        let signature = (try? key.signature(over: Array(signingInput.utf8))) ?? []
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// `url` without query and fragment (RFC 9449 §4.2 `htu`).
    public static func targetURI(_ url: String) -> String {
        guard let end = url.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) else {
            return url
        }
        return String(url[..<end])
    }

    public static func == (lhs: DPoPKey, rhs: DPoPKey) -> Bool { lhs.scalar == rhs.scalar }

    /// Never the key.
    public var description: String { "DPoPKey(jkt \(thumbprint))" }
}
