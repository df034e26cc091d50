import BFFCore
import Crypto
import CryptoExtras
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The development IdP's signing keys (an RSA-2048 and a P-256 key) and a compact-JWS signer.
///
/// Public so tests can mint tokens with chosen headers and claims (including hostile ones).
public final class DevSigningKeys: Sendable {
    struct RSAKey: Sendable {
        let kid: String
        let key: _RSA.Signing.PrivateKey
    }
    struct ECKey: Sendable {
        let kid: String
        let key: P256.Signing.PrivateKey
    }
    private let state: Mutex<(rsa: RSAKey, ec: ECKey, generation: Int, retired: [RSAKey])>

    /// Generates fresh keys (`rsa-1`, `ec-1`).
    public init() throws {
        let rsa = RSAKey(kid: "rsa-1", key: try _RSA.Signing.PrivateKey(keySize: .bits2048))
        let ec = ECKey(kid: "ec-1", key: P256.Signing.PrivateKey())
        self.state = Mutex((rsa, ec, 1, []))
    }

    /// The current RSA key id.
    public var rsaKeyID: String { state.withLock { $0.rsa.kid } }
    /// The current EC key id.
    public var ecKeyID: String { state.withLock { $0.ec.kid } }

    /// Replaces both keys with new ones under new ids; the old ones leave the JWKS.
    public func rotate() throws {
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let ec = P256.Signing.PrivateKey()
        state.withLock { state in
            state.generation += 1
            state.rsa = RSAKey(kid: "rsa-\(state.generation)", key: rsa)
            state.ec = ECKey(kid: "ec-\(state.generation)", key: ec)
        }
    }

    /// The public JWKS document.
    public func jwksJSON() throws -> String {
        let (rsa, ec) = state.withLock { ($0.rsa, $0.ec) }
        let primitives = try rsa.key.publicKey.getKeyPrimitives()
        let x963 = Array(ec.key.publicKey.x963Representation)
        let x = Base64URL.encode(x963[1..<33])
        let y = Base64URL.encode(x963[33..<65])
        return """
            {"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"\(rsa.kid)","n":"\(Base64URL.encode(Array(primitives.modulus)))","e":"\(Base64URL.encode(Array(primitives.publicExponent)))"},\
            {"kty":"EC","use":"sig","alg":"ES256","kid":"\(ec.kid)","crv":"P-256","x":"\(x)","y":"\(y)"}]}
            """
    }

    /// Signs `claims` with the current key for `algorithm` (`RS256` or `ES256`).
    public func sign(claims: [String: JSONValue], algorithm: String = "RS256", type: String? = "JWT") throws -> String {
        let kid = algorithm == "ES256" ? ecKeyID : rsaKeyID
        var header: [String: JSONValue] = ["alg": .string(algorithm), "kid": .string(kid)]
        if let type { header["typ"] = .string(type) }
        return try sign(header: header, claims: claims, algorithm: algorithm)
    }

    /// Signs with an explicit header (tests use this for hostile headers). `algorithm` selects the
    /// key actually used, whatever the header says.
    public func sign(header: [String: JSONValue], claims: [String: JSONValue], algorithm: String) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let signingInput =
            Base64URL.encode(Array(try encoder.encode(header))) + "."
            + Base64URL.encode(Array(try encoder.encode(claims)))
        let (rsa, ec) = state.withLock { ($0.rsa, $0.ec) }
        let signature: [UInt8]
        switch algorithm {
        case "ES256":
            signature = Array(try ec.key.signature(for: Array(signingInput.utf8)).rawRepresentation)
        case "PS256":
            signature = Array(
                try rsa.key.signature(for: SHA256.hash(data: Array(signingInput.utf8)), padding: .PSS).rawRepresentation
            )
        default:
            signature = Array(
                try rsa.key.signature(for: SHA256.hash(data: Array(signingInput.utf8)), padding: .insecurePKCS1v1_5)
                    .rawRepresentation)
        }
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// The RSA public key's DER bytes (tests use them as a forged HMAC secret).
    public func rsaPublicKeyDER() -> [UInt8] {
        state.withLock { Array($0.rsa.key.publicKey.derRepresentation) }
    }
}
