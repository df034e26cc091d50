import Crypto
import CryptoExtras

/// The asymmetric JWS algorithms the BFF signs with (client assertions, DPoP proofs).
public enum JWSAlgorithm: String, Sendable, Hashable, CaseIterable {
    /// ECDSA with P-256 and SHA-256.
    case es256 = "ES256"
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    case rs256 = "RS256"
    /// RSASSA-PSS with SHA-256.
    case ps256 = "PS256"
}

/// Why a key could not be loaded or used. The text names the problem, never key material.
public struct JWSKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public let reason: String
    /// An error with `reason`.
    public init(_ reason: String) { self.reason = reason }
    /// The reason.
    public var description: String { reason }
}

/// A public key as a JWK (EC P-256 or RSA), able to verify compact-JWS signatures and to compute
/// its RFC 7638 thumbprint.
public struct JWSPublicKey: Sendable, Hashable {
    enum Backing: Sendable, Hashable {
        case p256(x: [UInt8], y: [UInt8])
        case rsa(n: [UInt8], e: [UInt8])
    }
    let backing: Backing

    init(backing: Backing) { self.backing = backing }

    /// Reads the public members of a JWK object (`kty` EC with `crv` P-256, or RSA); private
    /// members are ignored.
    public init(jwk: [String: JSONValue]) throws(JWSKeyError) {
        func member(_ name: String) throws(JWSKeyError) -> [UInt8] {
            guard let text = jwk[name]?.stringValue, let bytes = Base64URL.decode(text), !bytes.isEmpty else {
                throw JWSKeyError("the JWK has no valid '\(name)'")
            }
            return bytes
        }
        switch jwk["kty"]?.stringValue {
        case "EC":
            guard jwk["crv"]?.stringValue == "P-256" else { throw JWSKeyError("only the EC curve P-256 is supported") }
            let x = try member("x")
            let y = try member("y")
            guard x.count == 32, y.count == 32,
                (try? P256.Signing.PublicKey(x963Representation: [0x04] + x + y)) != nil
            else { throw JWSKeyError("the JWK's x and y are not a point on P-256") }
            backing = .p256(x: x, y: y)
        case "RSA":
            let n = Array(try member("n").drop(while: { $0 == 0 }))
            let e = Array(try member("e").drop(while: { $0 == 0 }))
            let bits = n.isEmpty ? 0 : n.count * 8 - n[0].leadingZeroBitCount
            guard bits >= 2048, bits <= 8192, !e.isEmpty, e.count <= 8 else {
                throw JWSKeyError("RSA keys must have 2048 to 8192 bits")
            }
            backing = .rsa(n: n, e: e)
        default:
            throw JWSKeyError("the JWK's kty is not EC or RSA")
        }
    }

    /// The RFC 7638 members in lexicographic order (the thumbprint input, and the public JWK).
    public var canonicalJSON: String {
        switch backing {
        case .p256(let x, let y):
            return
                "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"\(Base64URL.encode(x))\",\"y\":\"\(Base64URL.encode(y))\"}"
        case .rsa(let n, let e):
            return "{\"e\":\"\(Base64URL.encode(e))\",\"kty\":\"RSA\",\"n\":\"\(Base64URL.encode(n))\"}"
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url (DPoP's `jkt`).
    public var thumbprint: String { Base64URL.encode(Array(SHA256.hash(data: Array(canonicalJSON.utf8)))) }

    /// Whether `algorithm` can be verified with this key type.
    public func fits(_ algorithm: JWSAlgorithm) -> Bool {
        switch (backing, algorithm) {
        case (.p256, .es256), (.rsa, .rs256), (.rsa, .ps256): return true
        default: return false
        }
    }

    /// Verifies `signature` over `signingInput` with `algorithm`; false for any mismatch.
    public func verify(signature: [UInt8], over signingInput: [UInt8], algorithm: JWSAlgorithm) -> Bool {
        guard fits(algorithm) else { return false }
        switch backing {
        case .p256(let x, let y):
            guard let key = try? P256.Signing.PublicKey(x963Representation: [0x04] + x + y),
                let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: signingInput)
        case .rsa(let n, let e):
            guard let key = try? _RSA.Signing.PublicKey(n: n, e: e) else { return false }
            let digest = SHA256.hash(data: signingInput)
            let padding: _RSA.Signing.Padding = algorithm == .ps256 ? .PSS : .insecurePKCS1v1_5
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: digest,
                padding: padding)
        }
    }
}

/// A private signing key (P-256 or RSA ≥ 2048 bits) with its algorithm and key id.
///
/// Loaded from PEM (PKCS#8, SEC1 or PKCS#1) or a private JWK, or generated. Its description never
/// contains key material.
public struct JWSPrivateKey: Sendable, CustomStringConvertible {
    enum Backing: Sendable {
        case p256(P256.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
    }
    let backing: Backing
    /// The algorithm every signature uses.
    public let algorithm: JWSAlgorithm
    /// The `kid`: the JWK's own, or else the public key's RFC 7638 thumbprint.
    public let keyID: String
    /// The public half.
    public let publicKey: JWSPublicKey

    /// An ES256 key over `key` (cannot fail: P-256 keys fit ES256).
    init(p256 key: P256.Signing.PrivateKey, keyID: String? = nil) {
        backing = .p256(key)
        let point = Array(key.publicKey.x963Representation)
        publicKey = JWSPublicKey(backing: .p256(x: Array(point[1..<33]), y: Array(point[33..<65])))
        algorithm = .es256
        self.keyID = keyID ?? publicKey.thumbprint
    }

    init(backing: Backing, algorithm: JWSAlgorithm?, keyID: String?) throws(JWSKeyError) {
        self.backing = backing
        switch backing {
        case .p256(let key):
            let point = Array(key.publicKey.x963Representation)
            publicKey = JWSPublicKey(backing: .p256(x: Array(point[1..<33]), y: Array(point[33..<65])))
        case .rsa(let key):
            guard key.keySizeInBits >= 2048, let primitives = try? key.publicKey.getKeyPrimitives() else {
                throw JWSKeyError("RSA keys must have at least 2048 bits")
            }
            publicKey = JWSPublicKey(
                backing: .rsa(
                    n: Array(primitives.modulus.drop(while: { $0 == 0 })),
                    e: Array(primitives.publicExponent.drop(while: { $0 == 0 }))))
        }
        let chosen: JWSAlgorithm
        switch (backing, algorithm) {
        case (.p256, nil): chosen = .es256
        case (.rsa, nil): chosen = .rs256
        case (_, let algorithm?):
            guard publicKey.fits(algorithm) else {
                throw JWSKeyError("algorithm \(algorithm.rawValue) does not fit this key type")
            }
            chosen = algorithm
        }
        self.algorithm = chosen
        self.keyID = keyID ?? publicKey.thumbprint
    }

    /// A new random key: P-256 for ES256, RSA-2048 for RS256 and PS256.
    public static func generate(_ algorithm: JWSAlgorithm = .es256) throws(JWSKeyError) -> JWSPrivateKey {
        switch algorithm {
        case .es256:
            return JWSPrivateKey(p256: P256.Signing.PrivateKey())
        case .rs256, .ps256:
            guard let key = try? _RSA.Signing.PrivateKey(keySize: .bits2048) else {
                throw JWSKeyError("RSA key generation failed")
            }
            return try JWSPrivateKey(backing: .rsa(key), algorithm: algorithm, keyID: nil)
        }
    }

    /// Loads a PEM private key (PKCS#8, SEC1 or PKCS#1). `algorithm` overrides the key type's
    /// default (ES256, RS256).
    public init(pem: String, algorithm: JWSAlgorithm? = nil) throws(JWSKeyError) {
        let trimmed = pem.trimmingASCIIWhitespace()
        guard trimmed.hasPrefix("-----BEGIN") else { throw JWSKeyError("the key is not PEM") }
        guard !trimmed.contains("ENCRYPTED") else {
            throw JWSKeyError("encrypted PEM keys are not supported; store the key unencrypted with mode 0600")
        }
        guard !trimmed.contains("PUBLIC KEY") else {
            throw JWSKeyError("this is a public key; the private key is needed")
        }
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: trimmed) {
            try self.init(backing: .p256(key), algorithm: algorithm, keyID: nil)
        } else if let key = try? _RSA.Signing.PrivateKey(pemRepresentation: trimmed) {
            try self.init(backing: .rsa(key), algorithm: algorithm, keyID: nil)
        } else {
            throw JWSKeyError("the PEM is not a P-256 or RSA (2048+ bits) private key")
        }
    }

    /// Loads a private JWK (a single key, or a JWKS holding exactly one). `algorithm` overrides
    /// the JWK's `alg` and the key type's default (ES256, RS256).
    public init(jwk: [String: JSONValue], algorithm: JWSAlgorithm? = nil) throws(JWSKeyError) {
        var object = jwk
        if let keys = object["keys"]?.arrayValue {
            guard keys.count == 1, let only = keys[0].objectValue else {
                throw JWSKeyError("the JWKS must hold exactly one key")
            }
            object = only
        }
        let parsedAlgorithm: JWSAlgorithm?
        if let stated = object["alg"] {
            guard let name = stated.stringValue, let known = JWSAlgorithm(rawValue: name) else {
                throw JWSKeyError("the JWK's alg is not ES256, RS256 or PS256")
            }
            parsedAlgorithm = known
        } else {
            parsedAlgorithm = nil
        }
        let publicKey = try JWSPublicKey(jwk: object)
        func member(_ name: String) throws(JWSKeyError) -> [UInt8] {
            guard let value = object[name]?.stringValue, let bytes = Base64URL.decode(value), !bytes.isEmpty else {
                throw JWSKeyError("the JWK has no valid private member '\(name)' (is it a public key?)")
            }
            return bytes
        }
        let backing: Backing
        switch publicKey.backing {
        case .p256:
            let d = try member("d")
            guard let key = try? P256.Signing.PrivateKey(rawRepresentation: d) else {
                throw JWSKeyError("the JWK's d is not a P-256 private key")
            }
            backing = .p256(key)
        case .rsa(let n, let e):
            let d = try member("d")
            let p = try member("p")
            let q = try member("q")
            guard let key = try? _RSA.Signing.PrivateKey(n: n, e: e, d: d, p: p, q: q) else {
                throw JWSKeyError("the JWK's RSA members do not form a private key")
            }
            backing = .rsa(key)
        }
        if let kid = object["kid"], kid.stringValue?.isEmpty ?? true {
            throw JWSKeyError("the JWK's kid is not a non-empty string")
        }
        try self.init(backing: backing, algorithm: algorithm ?? parsedAlgorithm, keyID: object["kid"]?.stringValue)
        guard self.publicKey == publicKey else {
            throw JWSKeyError("the JWK's public members do not belong to its private key")
        }
    }

    /// A P-256 key from its 32-byte private scalar (how a DPoP key is sealed into sessions).
    public init(p256Scalar: [UInt8]) throws(JWSKeyError) {
        guard p256Scalar.count == 32, let key = try? P256.Signing.PrivateKey(rawRepresentation: p256Scalar) else {
            throw JWSKeyError("not a P-256 private scalar")
        }
        self.init(p256: key)
    }

    /// The 32-byte private scalar of a P-256 key; nil for RSA.
    public var p256Scalar: [UInt8]? {
        if case .p256(let key) = backing { return Array(key.rawRepresentation) }
        return nil
    }

    /// The private key as PEM (PKCS#8 for P-256, PKCS#1 for RSA): for `bff keys client-key` only.
    public var pemRepresentation: String {
        switch backing {
        case .p256(let key): return key.pemRepresentation
        case .rsa(let key): return key.pemRepresentation
        }
    }

    /// The public JWK with `kid`, `alg` and `use: sig` (what an IdP registers).
    public var publicJWKJSON: String {
        var members = publicKey.canonicalJSON
        members.removeLast()
        return members + ",\"alg\":\"\(algorithm.rawValue)\",\"kid\":\(JSONText.quote(keyID)),\"use\":\"sig\"}"
    }

    /// A compact JWS of `payload` (JSON object text) under `header` (JSON object text; it must
    /// name this key's `alg`).
    public func sign(header: String, payload: String) throws(JWSKeyError) -> String {
        let signingInput = Base64URL.encode(header.utf8) + "." + Base64URL.encode(payload.utf8)
        return signingInput + "." + Base64URL.encode(try signature(over: Array(signingInput.utf8)))
    }

    /// The raw JWS signature (`r‖s` for ES256) over `signingInput`.
    func signature(over input: [UInt8]) throws(JWSKeyError) -> [UInt8] {
        switch backing {
        case .p256(let key):
            guard let value = try? key.signature(for: input) else { throw JWSKeyError("signing failed") }
            return Array(value.rawRepresentation)
        case .rsa(let key):
            let padding: _RSA.Signing.Padding = algorithm == .ps256 ? .PSS : .insecurePKCS1v1_5
            guard let value = try? key.signature(for: SHA256.hash(data: input), padding: padding) else {
                throw JWSKeyError("signing failed")
            }
            return Array(value.rawRepresentation)
        }
    }

    /// Never the key: its type, algorithm and id.
    public var description: String { "JWSPrivateKey(\(algorithm.rawValue), kid \(keyID))" }
}

/// A compact JWS split into its parts, before any JSON decoding or signature check.
public struct CompactJWS: Sendable {
    /// The decoded protected-header bytes (JSON).
    public let headerJSON: [UInt8]
    /// The decoded payload bytes (JSON).
    public let payloadJSON: [UInt8]
    /// `base64url(header) . base64url(payload)`, the signed bytes.
    public let signingInput: [UInt8]
    /// The signature bytes.
    public let signature: [UInt8]

    /// Splits `token`; nil unless it has three base64url segments, a non-empty signature and at
    /// most `maximumBytes` bytes.
    public init?(_ token: some StringProtocol, maximumBytes: Int = 16 * 1024) {
        let bytes = Array(token.utf8)
        guard bytes.count <= maximumBytes else { return nil }
        let segments = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard segments.count == 3, !segments[0].isEmpty, !segments[1].isEmpty, !segments[2].isEmpty,
            let header = Base64URL.decode(segments[0]), let payload = Base64URL.decode(segments[1]),
            let signature = Base64URL.decode(segments[2])
        else { return nil }
        self.headerJSON = header
        self.payloadJSON = payload
        self.signingInput = Array(bytes[..<(segments[0].count + 1 + segments[1].count)])
        self.signature = signature
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
