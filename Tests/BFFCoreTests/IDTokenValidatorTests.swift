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

    /// Asserts the token is refused by the check named `reason` (the OIDCError's reason), not
    /// merely refused: a token built to fail one check must not pass by failing another.
    func expectRejected(
        _ token: String, because reason: String, nonce: String? = "n-123",
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            _ = try await validator.validate(token, expectedNonce: nonce)
            Issue.record("accepted; expected refusal because \(reason)", sourceLocation: sourceLocation)
        } catch let error as OIDCError {
            #expect(error == .invalidToken(reason), sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
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
        await expectRejected(token, because: "no current key matches the token's kid and alg")
    }

    @Test func algNone() async throws {
        let header = Base64URL.encode(Array(#"{"alg":"none","typ":"JWT"}"#.utf8))
        let payload = Base64URL.encode(Array(try JSONEncoder().encode(claims())))
        await expectRejected("\(header).\(payload).", because: "not a compact JWS")
        await expectRejected("\(header).\(payload).AAAA", because: "algorithm none is not accepted")
    }

    @Test func hs256WithThePublicKeyAsSecret() async throws {
        let header = Base64URL.encode(Array("{\"alg\":\"HS256\",\"kid\":\"\(idp.keys.rsaKeyID)\"}".utf8))
        let payload = Base64URL.encode(Array(try JSONEncoder().encode(claims())))
        let input = "\(header).\(payload)"
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array(input.utf8), using: SymmetricKey(data: idp.keys.rsaPublicKeyDER()))
        await expectRejected("\(input).\(Base64URL.encode(Array(mac)))", because: "algorithm HS256 is not accepted")
    }

    @Test func algMismatchWithKeyType() async throws {
        // Header claims ES256 but names the RSA key.
        let token = try idp.keys.sign(
            header: ["alg": "ES256", "kid": .string(idp.keys.rsaKeyID)], claims: claims(), algorithm: "ES256")
        await expectRejected(token, because: "no current key matches the token's kid and alg")
    }

    @Test func tamperedPayload() async throws {
        let token = try idp.keys.sign(claims: claims())
        let parts = token.split(separator: ".").map(String.init)
        let forged = Base64URL.encode(Array(try JSONEncoder().encode(claims(["sub": .string("mallory")]))))
        await expectRejected("\(parts[0]).\(forged).\(parts[2])", because: "signature verification failed")
    }

    @Test func wrongIssuer() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["iss": .string("https://evil.test")])), because: "iss does not match")
    }
    @Test func wrongAudience() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["aud": .string("other")])), because: "aud does not contain the client id")
    }
    @Test func missingAudience() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["aud": nil])), because: "aud missing")
    }
    @Test func wrongAzp() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["azp": .string("other")])), because: "azp is not the client id")
    }
    @Test func severalAudiencesWithoutAzp() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["aud": .array([.string("bff"), .string("api")])])),
            because: "several audiences without azp")
    }
    @Test func severalAudiencesWithAzp() async throws {
        _ = try await validator.validate(
            try idp.keys.sign(
                claims: claims(["aud": .array([.string("bff"), .string("api")]), "azp": .string("bff")])),
            expectedNonce: "n-123")
    }
    @Test func expired() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["exp": .int(time.now - 61)])), because: "expired")
    }
    @Test func expiredWithinSkewIsAccepted() async throws {
        _ = try await validator.validate(
            try idp.keys.sign(claims: claims(["exp": .int(time.now - 30)])), expectedNonce: "n-123")
    }
    @Test func missingExp() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["exp": nil])), because: "exp missing")
    }
    @Test func futureIat() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["iat": .int(time.now + 120)])), because: "issued in the future")
    }
    @Test func missingIat() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["iat": nil])), because: "iat missing")
    }
    @Test func staleIat() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["iat": .int(time.now - 3600), "exp": .int(time.now + 300)])),
            because: "issued too long ago")
    }
    @Test func futureNbf() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["nbf": .int(time.now + 600)])), because: "not yet valid")
    }
    @Test func wrongNonce() async throws {
        await expectRejected(
            try idp.keys.sign(claims: claims(["nonce": .string("other")])), because: "nonce does not match")
    }
    @Test func missingNonce() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["nonce": nil])), because: "nonce does not match")
    }
    @Test func missingSub() async throws {
        await expectRejected(try idp.keys.sign(claims: claims(["sub": nil])), because: "sub missing")
    }
    @Test func critHeader() async throws {
        let token = try idp.keys.sign(
            header: ["alg": "RS256", "kid": .string(idp.keys.rsaKeyID), "crit": .array([.string("x")])],
            claims: claims(),
            algorithm: "RS256")
        await expectRejected(token, because: "crit header is not supported")
    }
    @Test(arguments: [
        ("", "not a compact JWS"), ("a.b", "not a compact JWS"), ("a.b.c.d", "not a compact JWS"),
        ("....", "not a compact JWS"), ("eyJ.eyJ.", "not a compact JWS"),
        ("eyJ.eyJ.AAAA", "malformed header or payload"),
        (String(repeating: "A", count: 20_000), "token too large"),
    ])
    func malformedTokens(_ token: String, reason: String) async { await expectRejected(token, because: reason) }

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
        for _ in 0..<20 { await expectRejected(forged, because: "no current key matches the token's kid and alg") }
        #expect(idp.jwksFetches.withLock { $0 } == 2, "one refetch for twenty unknown-kid tokens")
        time.advance(by: 31)
        await expectRejected(forged, because: "no current key matches the token's kid and alg")
        #expect(idp.jwksFetches.withLock { $0 } == 3)
    }

    @Test func keyOfOldGenerationIsRejectedAfterRotation() async throws {
        let old = try idp.keys.sign(claims: claims())
        try idp.keys.rotate()
        time.advance(by: 3601)  // cache expired: fresh JWKS without the old key
        await expectRejected(old, because: "no current key matches the token's kid and alg")
    }
}
