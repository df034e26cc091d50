import BFFCore

/// Validates ID tokens (OIDC Core §3.1.3.7) after the signature check.
public struct IDTokenValidator: Sendable {
    let verifier: JWSVerifier
    let issuer: String
    let clientID: String
    let clockSkew: Int64
    let time: any TimeSource
    /// ID tokens issued longer ago than this are refused, 10 minutes by default.
    public let maximumAge: Int64

    /// Creates a validator.
    public init(
        verifier: JWSVerifier, issuer: String, clientID: String, clockSkew: Duration, time: any TimeSource,
        maximumAge: Int64 = 600
    ) {
        self.verifier = verifier
        self.issuer = issuer
        self.clientID = clientID
        self.clockSkew = clockSkew.components.seconds
        self.time = time
        self.maximumAge = maximumAge
    }

    /// Verifies `idToken` and returns its claims. `expectedNonce` nil skips the nonce check (refresh).
    public func validate(_ idToken: String, expectedNonce: String?) async throws -> VerifiedJWS {
        let jws = try await verifier.verify(idToken)
        try checkClaims(jws.claims, expectedNonce: expectedNonce, now: time.now)
        return jws
    }

    /// The claim checks alone (unit-testable without signatures).
    public func checkClaims(_ claims: [String: JSONValue], expectedNonce: String?, now: UnixTime) throws {
        guard claims["iss"]?.stringValue == issuer else { throw OIDCError.invalidToken("iss does not match") }
        guard let subject = claims["sub"]?.stringValue, !subject.isEmpty, subject.utf8.count <= 255 else {
            throw OIDCError.invalidToken("sub missing")
        }
        let audiences = try audiencesContaining(clientID, in: claims)
        if let azp = claims["azp"] {
            guard azp.stringValue == clientID else { throw OIDCError.invalidToken("azp is not the client id") }
        } else if audiences.count > 1 {
            throw OIDCError.invalidToken("several audiences without azp")
        }
        guard let exp = claims["exp"]?.int64Value else { throw OIDCError.invalidToken("exp missing") }
        guard now < exp + clockSkew else { throw OIDCError.invalidToken("expired") }
        guard let iat = claims["iat"]?.int64Value else { throw OIDCError.invalidToken("iat missing") }
        guard iat <= now + clockSkew else { throw OIDCError.invalidToken("issued in the future") }
        if expectedNonce != nil {
            guard now - iat <= maximumAge + clockSkew else { throw OIDCError.invalidToken("issued too long ago") }
        }
        if let nbf = claims["nbf"] {
            guard let value = nbf.int64Value, value <= now + clockSkew else {
                throw OIDCError.invalidToken("not yet valid")
            }
        }
        if let expectedNonce {
            guard let nonce = claims["nonce"]?.stringValue, constantTimeEquals(nonce, expectedNonce) else {
                throw OIDCError.invalidToken("nonce does not match")
            }
        }
    }
}

/// The `aud` claim (a string or an array) as a list; throws unless it names `clientID`.
func audiencesContaining(_ clientID: String, in claims: [String: JSONValue]) throws -> [String] {
    let audiences: [String]
    switch claims["aud"] {
    case .string(let value): audiences = [value]
    case .array(let values): audiences = values.compactMap(\.stringValue)
    default: throw OIDCError.invalidToken("aud missing")
    }
    guard audiences.contains(clientID) else { throw OIDCError.invalidToken("aud does not contain the client id") }
    return audiences
}

/// Compares two strings in time independent of where they differ.
public func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
    let a = Array(lhs.utf8)
    let b = Array(rhs.utf8)
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in 0..<a.count { difference |= a[index] ^ b[index] }
    return difference == 0
}
