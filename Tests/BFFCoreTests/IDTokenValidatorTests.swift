import BFFCore
import BFFDevIdentityProvider
import BFFOIDC
import Crypto
import Foundation
import Testing

@Suite("ID token validation")
struct IDTokenValidatorTests {
    let idp: StubIdP
    let time = ManualTimeSource(now: 1_800_000_000)
    let provider: OIDCProvider
    let validator: IDTokenValidator

    init() throws {
        idp = try StubIdP()
        var configuration = OIDCConfiguration(issuer: "https://idp.test", clientID: "bff", clientSecret: "s")
        configuration.clockSkew = .seconds(60)
        provider = OIDCProvider(configuration: configuration, http: idp, time: time)
        validator = IDTokenValidator(
            verifier: JWSVerifier(provider: provider, allowedAlgorithms: configuration.signingAlgorithms),
            issuer: configuration.issuer, clientID: "bff", clockSkew: .seconds(60), time: time)
    }

    func claims(_ changes: [String: JSONValue?] = [:]) -> [String: JSONValue] {
        var claims: [String: JSONValue] = [
            "iss": .string("https://idp.test"), "sub": .string("alice"), "aud": .string("bff"),
            "exp": .int(time.now + 300), "iat": .int(time.now), "nonce": .string("n-123"), "sid": .string("s1"),
        ]
        for (key, value) in changes { claims[key] = value }
        return claims
    }

    func expectRejected(_ token: String, nonce: String? = "n-123", sourceLocation: SourceLocation = #_sourceLocation)
        async
    {
        await #expect(throws: OIDCError.self, sourceLocation: sourceLocation) {
            _ = try await validator.validate(token, expectedNonce: nonce)
        }
    }

    @Test func validRS256() async throws {
        let verified = try await validator.validate(try idp.keys.sign(claims: claims()), expectedNonce: "n-123")
        #expect(verified.claims["sub"] == .string("alice"))
    }

    @Test func validES256() async throws {
        _ = try await validator.validate(
            try idp.keys.sign(claims: claims(), algorithm: "ES256"), expectedNonce: "n-123")
    }

    @Test func ps256HeaderOnAnRS256Key() async throws {
        // PS256 with the RSA key: the JWK says RS256, so a PS256 header does not fit that key.
        let token = try idp.keys.sign(
            header: ["alg": "PS256", "kid": .string(idp.keys.rsaKeyID)], claims: claims(), algorithm: "PS256")
        await expectRejected(token)
    }

    @Test func algNone() async throws {
        let header = Base64URL.encode(Array(#"{"alg":"none","typ":"JWT"}"#.utf8))
        let payload = Base64URL.encode(Array(try JSONEncoder().encode(claims())))
        await expectRejected("\(header).\(payload).")
        await expectRejected("\(header).\(payload).AAAA")
    }

    @Test func hs256WithThePublicKeyAsSecret() async throws {
        let header = Base64URL.encode(Array("{\"alg\":\"HS256\",\"kid\":\"\(idp.keys.rsaKeyID)\"}".utf8))
        let payload = Base64URL.encode(Array(try JSONEncoder().encode(claims())))
        let input = "\(header).\(payload)"
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array(input.utf8), using: SymmetricKey(data: idp.keys.rsaPublicKeyDER()))
        await expectRejected("\(input).\(Base64URL.encode(Array(mac)))")
    }

    @Test func algMismatchWithKeyType() async throws {
        // Header claims ES256 but names the RSA key.
        let token = try idp.keys.sign(
            header: ["alg": "ES256", "kid": .string(idp.keys.rsaKeyID)], claims: claims(), algorithm: "ES256")
        await expectRejected(token)
    }

    @Test func tamperedPayload() async throws {
        let token = try idp.keys.sign(claims: claims())
        let parts = token.split(separator: ".").map(String.init)
        let forged = Base64URL.encode(Array(try JSONEncoder().encode(claims(["sub": .string("mallory")]))))
        await expectRejected("\(parts[0]).\(forged).\(parts[2])")
    }

    @Test func wrongIssuer() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["iss": .string("https://evil.test")])))
    }
    @Test func wrongAudience() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["aud": .string("other")])))
    }
    @Test func missingAudience() async throws { await expectRejected(try idp.keys.sign(claims: claims(["aud": nil]))) }
    @Test func wrongAzp() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["azp": .string("other")])))
    }
    @Test func severalAudiencesWithoutAzp() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["aud": .array([.string("bff"), .string("api")])])))
    }
    @Test func severalAudiencesWithAzp() async throws {
        _ = try await validator.validate(
            try idp.keys.sign(
                claims: claims(["aud": .array([.string("bff"), .string("api")]), "azp": .string("bff")])),
            expectedNonce: "n-123")
    }
    @Test func expired() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["exp": .int(time.now - 61)])))
    }
    @Test func expiredWithinSkewIsAccepted() async throws {
        _ = try await validator.validate(
            try idp.keys.sign(claims: claims(["exp": .int(time.now - 30)])), expectedNonce: "n-123")
    }
    @Test func missingExp() async throws { await expectRejected(try idp.keys.sign(claims: claims(["exp": nil]))) }
    @Test func futureIat() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["iat": .int(time.now + 120)])))
    }
    @Test func missingIat() async throws { await expectRejected(try idp.keys.sign(claims: claims(["iat": nil]))) }
    @Test func staleIat() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["iat": .int(time.now - 3600), "exp": .int(time.now + 300)])))
    }
    @Test func futureNbf() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["nbf": .int(time.now + 600)])))
    }
    @Test func wrongNonce() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["nonce": .string("other")])))
    }
    @Test func missingNonce() async throws { await expectRejected(try idp.keys.sign(claims: claims(["nonce": nil]))) }
    @Test func missingSub() async throws { await expectRejected(try idp.keys.sign(claims: claims(["sub": nil]))) }
    @Test func critHeader() async throws {
        let token = try idp.keys.sign(
            header: ["alg": "RS256", "kid": .string(idp.keys.rsaKeyID), "crit": .array([.string("x")])],
            claims: claims(),
            algorithm: "RS256")
        await expectRejected(token)
    }
    @Test(arguments: ["", "a.b", "a.b.c.d", "....", "eyJ.eyJ.", String(repeating: "A", count: 20_000)])
    func malformedTokens(_ token: String) async { await expectRejected(token) }

    @Test func unknownKidTriggersOneRefetchThenRotatedKeyIsAccepted() async throws {
        _ = try await validator.validate(try idp.keys.sign(claims: claims()), expectedNonce: "n-123")
        #expect(idp.jwksFetches.withLock { $0 } == 1)
        try idp.keys.rotate()
        _ = try await validator.validate(try idp.keys.sign(claims: claims()), expectedNonce: "n-123")
        #expect(idp.jwksFetches.withLock { $0 } == 2)
    }

    @Test func unknownKidRefetchIsRateLimited() async throws {
        _ = try await validator.validate(try idp.keys.sign(claims: claims()), expectedNonce: "n-123")
        let forged = try idp.keys.sign(header: ["alg": "RS256", "kid": "nope-1"], claims: claims(), algorithm: "RS256")
        for _ in 0..<20 { await expectRejected(forged) }
        #expect(idp.jwksFetches.withLock { $0 } == 2, "one refetch for twenty unknown-kid tokens")
        time.advance(by: 31)
        await expectRejected(forged)
        #expect(idp.jwksFetches.withLock { $0 } == 3)
    }

    @Test func keyOfOldGenerationIsRejectedAfterRotation() async throws {
        let old = try idp.keys.sign(claims: claims())
        try idp.keys.rotate()
        time.advance(by: 3601)  // cache expired: fresh JWKS without the old key
        await expectRejected(old)
    }
}
