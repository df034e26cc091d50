import BFFCore
import JWTKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A JWS whose signature has been verified with a current IdP key.
public struct VerifiedJWS: Sendable {
    /// The protected header.
    public var header: [String: JSONValue]
    /// The payload claims.
    public var claims: [String: JSONValue]
    /// The payload's raw JSON bytes.
    public var payloadJSON: [UInt8]
}

/// Verifies compact JWS signatures against the IdP's JWKS with an allow-list of algorithms.
///
/// Before any cryptography: exactly three segments, a JSON header whose `alg` is on the allow-list
/// (which can never contain `none` or an HMAC algorithm), no `crit`, and a key whose type, curve and
/// stated `alg` fit the header `alg` (so an RSA public key can never be used as an HMAC secret).
public struct JWSVerifier: Sendable {
    let provider: OIDCProvider
    /// Accepted algorithms (intersected with the asymmetric ones).
    public let allowedAlgorithms: Set<String>

    static let asymmetric: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ]
    /// Largest token accepted, in bytes.
    public static let maximumTokenBytes = 16 * 1024

    /// Creates a verifier.
    public init(provider: OIDCProvider, allowedAlgorithms: [String]) {
        self.provider = provider
        self.allowedAlgorithms = Set(allowedAlgorithms).intersection(JWSVerifier.asymmetric)
    }

    /// Verifies `token`'s signature and decodes it.
    public func verify(_ token: String) async throws -> VerifiedJWS {
        let bytes = Array(token.utf8)
        guard bytes.count <= JWSVerifier.maximumTokenBytes else { throw OIDCError.invalidToken("token too large") }
        let segments = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard segments.count == 3, !segments[2].isEmpty else { throw OIDCError.invalidToken("not a compact JWS") }
        guard let headerBytes = Base64URL.decode(segments[0]), let payloadBytes = Base64URL.decode(segments[1]),
            let header = try? JSONDecoder().decode([String: JSONValue].self, from: Data(headerBytes))
        else { throw OIDCError.invalidToken("malformed header or payload") }
        guard let algorithm = header["alg"]?.stringValue else { throw OIDCError.invalidToken("no alg") }
        guard allowedAlgorithms.contains(algorithm) else {
            throw OIDCError.invalidToken("algorithm \(algorithm) is not accepted")
        }
        guard header["crit"] == nil else { throw OIDCError.invalidToken("crit header is not supported") }
        if let kid = header["kid"], kid.stringValue == nil { throw OIDCError.invalidToken("kid is not a string") }
        let kid = header["kid"]?.stringValue
        let entry: JSONWebKeySet.Entry?
        do {
            entry = try await provider.verificationKey(kid: kid, algorithm: algorithm)
        } catch let error as OIDCError {
            throw error
        }
        guard let entry else { throw OIDCError.invalidToken("no current key matches the token's kid and alg") }
        do {
            _ = try await entry.collection.verify(bytes, as: OpaquePayload.self)
        } catch {
            throw OIDCError.invalidToken("signature verification failed")
        }
        guard let claims = try? JSONDecoder().decode([String: JSONValue].self, from: Data(payloadBytes)) else {
            throw OIDCError.invalidToken("payload is not a JSON object")
        }
        return VerifiedJWS(header: header, claims: claims, payloadJSON: payloadBytes)
    }
}

/// jwt-kit payload that checks nothing: claims are validated by the BFF's own validators with an
/// injected clock.
struct OpaquePayload: JWTPayload {
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {}
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
