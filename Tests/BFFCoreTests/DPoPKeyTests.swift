import BFFCore
import BFFDevIdentityProvider
import Foundation
import Testing

@Suite("DPoP keys and proofs (RFC 9449)")
struct DPoPKeyTests {
    @Test func proofCarriesTheRequestAndVerifiesWithItsOwnKey() throws {
        let key = DPoPKey.generate()
        let random = SystemSecureRandom()
        let proof = key.proof(
            method: "POST", url: "https://api.example.com/orders/7?page=2#x", accessToken: "at-123", nonce: "n-1",
            now: 1_700_000_000, random: random)
        let jws = try #require(CompactJWS(proof))
        let header = try JSONDecoder().decode([String: JSONValue].self, from: Data(jws.headerJSON))
        let claims = try JSONDecoder().decode([String: JSONValue].self, from: Data(jws.payloadJSON))
        #expect(header["typ"] == "dpop+jwt")
        #expect(header["alg"] == "ES256")
        #expect(header["jwk"]?.objectValue?["d"] == nil, "the public key only")
        #expect(claims["htm"] == "POST")
        #expect(claims["htu"] == "https://api.example.com/orders/7", "no query, no fragment")
        #expect(claims["iat"] == .int(1_700_000_000))
        #expect(claims["nonce"] == "n-1")
        // ath = base64url(SHA-256("at-123")), RFC 9449 §4.2; computed with openssl dgst -sha256 -binary.
        #expect(claims["ath"] == "pZOyhFN0Z9eQivPyniH1Gg1OzUpcjUffjr7n0FzCLck")
        #expect(claims["jti"]?.stringValue?.utf8.count == 22)
        // An independent verifier (the dev IdP's) accepts it for this request and gives the key's jkt.
        let verdict = DevDPoPVerifier().verify(
            proof, method: "POST", url: "https://api.example.com/orders/7", accessToken: "at-123", nonce: "n-1",
            now: 1_700_000_010)
        #expect(verdict == .success(key.thumbprint))
        #expect(key.thumbprint == key.key.publicKey.thumbprint)
        let other = key.proof(
            method: "POST", url: "https://api.example.com/orders/7", accessToken: "at-123", nonce: nil,
            now: 1_700_000_000, random: random)
        #expect(other != proof, "a new jti each time")
    }

    @Test func wrongRequestOrTokenIsRefusedForItsReason() {
        let key = DPoPKey.generate()
        let random = SystemSecureRandom()
        let verifier = DevDPoPVerifier()
        func proof(_ url: String = "http://a/x", method: String = "GET", token: String? = "t") -> String {
            key.proof(method: method, url: url, accessToken: token, nonce: nil, now: 100, random: random)
        }
        #expect(
            verifier.verify(proof(), method: "POST", url: "http://a/x", accessToken: "t", now: 100)
                == .failure(.init("htm")))
        #expect(
            verifier.verify(proof(), method: "GET", url: "http://a/y", accessToken: "t", now: 100)
                == .failure(.init("htu")))
        #expect(
            verifier.verify(proof(), method: "GET", url: "http://a/x", accessToken: "u", now: 100)
                == .failure(.init("ath")))
        #expect(
            verifier.verify(proof(), method: "GET", url: "http://a/x", accessToken: "t", now: 200)
                == .failure(.init("iat")))
        let once = proof()
        #expect(
            verifier.verify(once, method: "GET", url: "http://a/x", accessToken: "t", now: 100)
                == .success(key.thumbprint))
        #expect(
            verifier.verify(once, method: "GET", url: "http://a/x", accessToken: "t", now: 100)
                == .failure(.init("jti replayed")))
    }

    @Test func sessionsAndLoginTransactionsKeepTheirKey() throws {
        let key = DPoPKey.generate()
        var session = Session(
            issuer: "https://idp", subject: "s", idpSessionID: "sid", logoutID: "sid", claimsJSON: Array("{}".utf8),
            tokens: TokenSet(accessToken: "a", accessTokenExpiresAt: 9, tokenType: "DPoP", refreshToken: "r"),
            createdAt: 1, renewedAt: 2)
        #expect(Session(encoded: session.encoded()) == session, "version 1 without a key")
        session.dpopKey = key
        let decoded = try #require(Session(encoded: session.encoded()))
        #expect(decoded == session)
        #expect(decoded.dpopBinding?.thumbprint == key.thumbprint)
        session.tokens.store(ResourceToken(resource: "urn:r", accessToken: "x", expiresAt: nil))
        #expect(Session(encoded: session.encoded()) == session, "resource tokens and a key")
        session.tokens.tokenType = "Bearer"
        #expect(session.dpopBinding == nil, "a Bearer answer is not bound")
        // A truncated or corrupted key is refused, not turned into another key.
        var bytes = decoded.encoded()
        bytes.removeLast()
        #expect(Session(encoded: bytes) == nil)

        var transaction = LoginTransaction.start(
            issuer: "https://idp", returnURL: "/", prompt: nil, now: 5, random: SystemSecureRandom(), dpop: true)
        let sealedForm = transaction.encoded()
        #expect(LoginTransaction(encoded: sealedForm) == transaction)
        #expect(LoginTransaction(encoded: sealedForm)?.dpopKey?.thumbprint == transaction.dpopKey?.thumbprint)
        transaction.dpopKey = nil
        #expect(LoginTransaction(encoded: transaction.encoded()) == transaction)
        #expect(transaction.encoded().first == 1, "without DPoP, the format earlier releases read")
    }
}
