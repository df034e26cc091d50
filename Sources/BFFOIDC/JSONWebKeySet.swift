import BFFCore
import JWTKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A parsed JWKS: each usable signing key with the facts needed to pick it safely.
public struct JSONWebKeySet: Sendable {
    /// One key.
    public struct Entry: Sendable {
        /// `kid`, or a synthetic `#n` when absent.
        public var kid: String
        /// Whether the IdP gave a `kid`.
        public var hasKID: Bool
        /// `kty`: RSA, EC or OKP.
        public var keyType: String
        /// `alg`, if stated.
        public var algorithm: String?
        /// `crv`, for EC and OKP keys.
        public var curve: String?
        /// A collection holding only this key, for jwt-kit's signature check.
        let collection: JWTKeyCollection

        /// Whether this key may verify a JWS with header `alg`.
        public func accepts(algorithm alg: String) -> Bool {
            if let algorithm, algorithm != alg { return false }
            switch alg {
            case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512": return keyType == "RSA"
            case "ES256": return keyType == "EC" && curve == "P-256"
            case "ES384": return keyType == "EC" && curve == "P-384"
            case "ES512": return keyType == "EC" && curve == "P-521"
            case "EdDSA": return keyType == "OKP" && curve == "Ed25519"
            default: return false
            }
        }
    }

    /// The keys, in JWKS order.
    public let entries: [Entry]

    private struct RawKey: Decodable {
        var kid: String?
        var kty: String?
        var alg: String?
        var use: String?
        var crv: String?
    }

    /// Parses JWKS JSON. Keys that are not for signatures, are symmetric (`oct`), or that jwt-kit
    /// cannot load are skipped; a JWKS with no usable key is an error.
    public init(json: [UInt8]) async throws {
        let decoder = JSONDecoder()
        guard let object = try? decoder.decode([String: JSONValue].self, from: Data(json)),
            let keys = object["keys"]?.arrayValue
        else { throw OIDCError.invalidMetadata("JWKS is not a JSON object with a keys array") }
        let encoder = JSONEncoder()
        var entries: [Entry] = []
        for (index, key) in keys.enumerated() {
            guard let data = try? encoder.encode(key), let raw = try? decoder.decode(RawKey.self, from: data),
                let kty = raw.kty, kty == "RSA" || kty == "EC" || kty == "OKP"
            else { continue }
            if let use = raw.use, use != "sig" { continue }
            let kid = raw.kid ?? "#\(index)"
            guard var jwk = try? decoder.decode(JWK.self, from: data) else { continue }
            jwk.keyIdentifier = JWKIdentifier(string: kid)
            let collection = JWTKeyCollection()
            guard (try? await collection.add(jwk: jwk)) != nil else { continue }
            entries.append(
                Entry(
                    kid: kid, hasKID: raw.kid != nil, keyType: kty, algorithm: raw.alg, curve: raw.crv,
                    collection: collection))
        }
        guard !entries.isEmpty else { throw OIDCError.invalidMetadata("JWKS holds no usable signing key") }
        self.entries = entries
    }

    /// The key for a JWS header: by `kid` when given, else the single key compatible with `alg`.
    public func key(kid: String?, algorithm: String) -> Entry? {
        if let kid {
            return entries.first { $0.hasKID && $0.kid == kid && $0.accepts(algorithm: algorithm) }
        }
        let candidates = entries.filter { $0.accepts(algorithm: algorithm) }
        return candidates.count == 1 ? candidates[0] : nil
    }
}
