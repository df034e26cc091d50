import BFFCore
import Crypto
import Synchronization

/// RFC 9449 proof checks for the development IdP's token endpoint and the demo API: a
/// `dpop+jwt` JWS signed by the public key in its own `jwk` header, for this method and URL,
/// issued within a minute, with a `jti` never seen before (and `ath`, `nonce` when asked for).
public final class DevDPoPVerifier: Sendable {
    /// Why a proof was refused (tests assert the reason).
    public struct Refusal: Error, Equatable, Sendable {
        /// The check that failed: `malformed`, `typ`, `alg`, `jwk`, `signature`, `htm`, `htu`,
        /// `iat`, `jti`, `jti replayed`, `ath`, `nonce`.
        public let reason: String
        /// A refusal for `reason`.
        public init(_ reason: String) { self.reason = reason }
    }

    private let seen = Mutex<[String: UnixTime]>([:])
    /// Accepted age (and future skew) of `iat`, seconds.
    public let window: Int64

    /// A verifier with its own replay cache.
    public init(window: Int64 = 60) { self.window = window }

    /// Checks `proof`; returns the RFC 7638 thumbprint of its key (`jkt`).
    public func verify(
        _ proof: String, method: String, url: String, accessToken: String?, nonce: String? = nil, now: UnixTime
    ) -> Result<String, Refusal> {
        guard let jws = CompactJWS(proof, maximumBytes: 8 * 1024),
            let header = try? JSONValueDecoding.object(jws.headerJSON),
            let claims = try? JSONValueDecoding.object(jws.payloadJSON)
        else { return .failure(Refusal("malformed")) }
        guard header["typ"]?.stringValue == "dpop+jwt" else { return .failure(Refusal("typ")) }
        guard header["crit"] == nil, header["jku"] == nil, header["x5u"] == nil, header["x5c"] == nil else {
            return .failure(Refusal("header"))
        }
        guard let algorithm = header["alg"]?.stringValue.flatMap(JWSAlgorithm.init(rawValue:)) else {
            return .failure(Refusal("alg"))
        }
        guard let jwk = header["jwk"]?.objectValue, jwk["d"] == nil, jwk["p"] == nil,
            let key = try? JWSPublicKey(jwk: jwk)
        else { return .failure(Refusal("jwk")) }
        guard key.verify(signature: jws.signature, over: jws.signingInput, algorithm: algorithm) else {
            return .failure(Refusal("signature"))
        }
        guard claims["htm"]?.stringValue == method else { return .failure(Refusal("htm")) }
        guard claims["htu"]?.stringValue == DPoPKey.targetURI(url) else { return .failure(Refusal("htu")) }
        // No subtraction: a hostile iat (Int64.min) must not overflow.
        guard let issuedAt = claims["iat"]?.int64Value, issuedAt >= now - window, issuedAt <= now + window else {
            return .failure(Refusal("iat"))
        }
        if let accessToken {
            let expected = Base64URL.encode(Array(SHA256.hash(data: Array(accessToken.utf8))))
            guard claims["ath"]?.stringValue == expected else { return .failure(Refusal("ath")) }
        }
        if let nonce, claims["nonce"]?.stringValue != nonce { return .failure(Refusal("nonce")) }
        guard let jti = claims["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= 256 else {
            return .failure(Refusal("jti"))
        }
        // Kept until the proof could no longer pass the iat check (its iat may be ahead of now).
        let forgetAfter = max(issuedAt, now) + window
        let fresh = seen.withLock { seen -> Bool in
            if seen.count > 50_000 { seen = seen.filter { $0.value >= now } }
            guard seen[jti] == nil else { return false }
            seen[jti] = forgetAfter
            return true
        }
        return fresh ? .success(key.thumbprint) : .failure(Refusal("jti replayed"))
    }
}
