import BFFCore
import Foundation
import Testing

@Suite("JWS signing keys (client assertions, DPoP)")
struct JWSKeysTests {
    @Test(arguments: JWSAlgorithm.allCases)
    func signsWhatItsPublicKeyVerifies(_ algorithm: JWSAlgorithm) throws {
        let key = try JWSPrivateKey.generate(algorithm)
        #expect(key.algorithm == algorithm)
        let token = try key.sign(header: "{\"alg\":\"\(algorithm.rawValue)\"}", payload: "{\"a\":1}")
        let jws = try #require(CompactJWS(token))
        #expect(key.publicKey.verify(signature: jws.signature, over: jws.signingInput, algorithm: algorithm))
        // One flipped bit in the signed bytes or the signature, or another algorithm: refused.
        var tampered = jws.signingInput
        tampered[tampered.count - 1] ^= 1
        #expect(!key.publicKey.verify(signature: jws.signature, over: tampered, algorithm: algorithm))
        var badSignature = jws.signature
        badSignature[0] ^= 1
        #expect(!key.publicKey.verify(signature: badSignature, over: jws.signingInput, algorithm: algorithm))
        let other: JWSAlgorithm = algorithm == .rs256 ? .ps256 : algorithm == .ps256 ? .rs256 : .rs256
        #expect(!key.publicKey.verify(signature: jws.signature, over: jws.signingInput, algorithm: other))
        // Another key of the same type does not verify it.
        let stranger = try JWSPrivateKey.generate(algorithm)
        #expect(!stranger.publicKey.verify(signature: jws.signature, over: jws.signingInput, algorithm: algorithm))
    }

    @Test(arguments: JWSAlgorithm.allCases)
    func pemRoundTripKeepsTheKey(_ algorithm: JWSAlgorithm) throws {
        let key = try JWSPrivateKey.generate(algorithm)
        let loaded = try JWSPrivateKey(pem: key.pemRepresentation, algorithm: algorithm == .ps256 ? .ps256 : nil)
        #expect(loaded.publicKey == key.publicKey)
        #expect(loaded.algorithm == algorithm)
        #expect(loaded.keyID == key.publicKey.thumbprint, "a PEM key's kid is its RFC 7638 thumbprint")
        #expect(!"\(loaded)".contains("BEGIN"), "the description never shows key material")
    }

    /// RFC 7638 §3.1's example key and its thumbprint.
    @Test func thumbprintMatchesRFC7638() throws {
        let n =
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        let key = try JWSPublicKey(jwk: [
            "kty": "RSA", "n": .string(n), "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        ])
        #expect(key.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    }

    @Test func privateJWKLoadsAndKeepsItsKid() throws {
        let generated = try JWSPrivateKey.generate(.es256)
        let pemKey = try JWSPrivateKey(pem: generated.pemRepresentation)
        // Rebuild a private JWK from the public JWK plus d (taken from a second load path).
        let publicJWK = try JSONDecoder().decode([String: JSONValue].self, from: Data(pemKey.publicJWKJSON.utf8))
        #expect(publicJWK["kid"]?.stringValue == pemKey.keyID)
        #expect(publicJWK["alg"]?.stringValue == "ES256")
        #expect(publicJWK["d"] == nil, "the published JWK has no private member")
        #expect(throws: JWSKeyError("the JWK has no valid private member 'd' (is it a public key?)")) {
            try JWSPrivateKey(jwk: publicJWK)
        }
    }

    @Test func mismatchedJWKMembersAreRefused() throws {
        // d of one key with x/y of another.
        let a = try JWSPrivateKey.generate(.es256)
        let b = try JWSPrivateKey.generate(.es256)
        let d = try #require(Self.ecPrivateScalar(a))
        var jwk = try JSONDecoder().decode([String: JSONValue].self, from: Data(b.publicJWKJSON.utf8))
        jwk["d"] = .string(d)
        #expect(throws: JWSKeyError("the JWK's public members do not belong to its private key")) {
            try JWSPrivateKey(jwk: jwk)
        }
        var own = try JSONDecoder().decode([String: JSONValue].self, from: Data(a.publicJWKJSON.utf8))
        own["d"] = .string(d)
        #expect(try JWSPrivateKey(jwk: own).publicKey == a.publicKey)
        #expect(try JWSPrivateKey(jwk: ["keys": .array([.object(own)])]).keyID == a.keyID, "a JWKS of one key")
        #expect(throws: JWSKeyError("algorithm RS256 does not fit this key type")) {
            try JWSPrivateKey(jwk: own, algorithm: .rs256)
        }
    }

    @Test func unusableKeysGetAReason() throws {
        #expect(throws: JWSKeyError("this is a public key; the private key is needed")) {
            try JWSPrivateKey(pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
        }
        #expect(throws: JWSKeyError("encrypted PEM keys are not supported; store the key unencrypted with mode 0600")) {
            try JWSPrivateKey(pem: "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----")
        }
        #expect(throws: JWSKeyError("the PEM is not a P-256 or RSA (2048+ bits) private key")) {
            try JWSPrivateKey(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
        }
        #expect(throws: JWSKeyError("only the EC curve P-256 is supported")) {
            try JWSPublicKey(jwk: ["kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"])
        }
        #expect(throws: JWSKeyError("the JWK's kty is not EC or RSA")) { try JWSPublicKey(jwk: ["kty": "oct"]) }
        #expect(throws: JWSKeyError("the JWK's x and y are not a point on P-256")) {
            try JWSPublicKey(jwk: [
                "kty": "EC", "crv": "P-256", "x": .string(Base64URL.encode([UInt8](repeating: 1, count: 32))),
                "y": .string(Base64URL.encode([UInt8](repeating: 2, count: 32))),
            ])
        }
    }

    /// Keys made by OpenSSL (SEC1 EC, PKCS#8 RSA, a P-384 key) where the binary exists (CI installs it).
    @Test func opensslKeysLoad() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { return }
        let ec = try Self.openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout"])
        #expect(ec.contains("BEGIN EC PRIVATE KEY"))
        #expect(try JWSPrivateKey(pem: ec).algorithm == .es256)
        let rsa = try Self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        #expect(rsa.contains("BEGIN PRIVATE KEY"))
        #expect(try JWSPrivateKey(pem: rsa).algorithm == .rs256)
        #expect(try JWSPrivateKey(pem: rsa, algorithm: .ps256).algorithm == .ps256)
        let p384 = try Self.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"])
        #expect(throws: JWSKeyError("the PEM is not a P-256 or RSA (2048+ bits) private key")) {
            try JWSPrivateKey(pem: p384)
        }
        let small = try Self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"])
        #expect(throws: JWSKeyError("the PEM is not a P-256 or RSA (2048+ bits) private key")) {
            try JWSPrivateKey(pem: small)
        }
    }

    @Test func compactJWSSplitRefusesMalformedTokens() {
        #expect(CompactJWS("a.b") == nil)
        #expect(CompactJWS("a.b.c.d") == nil)
        #expect(CompactJWS("eyJ9.eyJ9.") == nil, "empty signature")
        #expect(CompactJWS("e$J9.eyJ9.AAAA") == nil, "not base64url")
        #expect(CompactJWS(String(repeating: "A", count: 17 * 1024) + ".AA.AA") == nil, "too large")
        #expect(CompactJWS("eyJ9.eyJ9.AAAA")?.signingInput == Array("eyJ9.eyJ9".utf8))
    }

    static func ecPrivateScalar(_ key: JWSPrivateKey) -> String? {
        // PKCS#8 DER of a P-256 key holds the 32-byte scalar after the SEC1 `04 20` octet-string tag.
        let pem = key.pemRepresentation.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let der = Data(base64Encoded: pem).map(Array.init),
            let index = (0..<(der.count - 34)).first(where: { der[$0] == 0x04 && der[$0 + 1] == 0x20 })
        else { return nil }
        return Base64URL.encode(der[(index + 2)..<(index + 34)])
    }

    static func openssl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
