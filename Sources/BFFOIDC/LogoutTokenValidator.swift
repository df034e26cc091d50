import BFFCore

/// What a valid logout token asks for.
public struct LogoutRequest: Sendable, Equatable {
    /// The IdP session to end, if given.
    public var sid: String?
    /// The subject whose sessions end, if given.
    public var sub: String?
}

/// Validates OIDC Back-Channel Logout 1.0 logout tokens (SPEC §7).
///
/// `exp` is optional (Glewlwyd and LemonLDAP::NG send none) but `iat` must lie within the last five
/// minutes (plus skew), and `jti` may be used once.
public struct LogoutTokenValidator: Sendable {
    let verifier: JWSVerifier
    let issuer: String
    let clientID: String
    let clockSkew: Int64
    let time: any TimeSource
    let replays: ReplayCache
    /// Oldest accepted `iat`, in seconds before now.
    public static let maximumAge: Int64 = 300
    static let event = "http://schemas.openid.net/event/backchannel-logout"

    /// Creates a validator.
    public init(
        verifier: JWSVerifier, issuer: String, clientID: String, clockSkew: Duration, time: any TimeSource,
        replays: ReplayCache
    ) {
        self.verifier = verifier
        self.issuer = issuer
        self.clientID = clientID
        self.clockSkew = clockSkew.components.seconds
        self.time = time
        self.replays = replays
    }

    /// Verifies `token` and records its `jti`.
    public func validate(_ token: String) async throws -> LogoutRequest {
        let jws = try await verifier.verify(token)
        let request = try checkClaims(jws.header, jws.claims, now: time.now)
        let jti = jws.claims["jti"]?.stringValue ?? ""
        let until =
            max(jws.claims["exp"]?.int64Value ?? 0, (jws.claims["iat"]?.int64Value ?? 0) + Self.maximumAge) + clockSkew
        guard replays.insert(issuer + "\u{0}" + jti, until: until, now: time.now) else {
            throw OIDCError.invalidToken("logout token replayed")
        }
        return request
    }

    /// The header and claim checks (unit-testable without signatures).
    public func checkClaims(_ header: [String: JSONValue], _ claims: [String: JSONValue], now: UnixTime) throws
        -> LogoutRequest
    {
        if let typ = header["typ"] {
            let value = typ.stringValue?.lowercased() ?? ""
            guard value == "jwt" || value == "logout+jwt" || value == "application/logout+jwt" else {
                throw OIDCError.invalidToken("typ is not JWT or logout+jwt")
            }
        }
        guard claims["iss"]?.stringValue == issuer else { throw OIDCError.invalidToken("iss does not match") }
        _ = try audiencesContaining(clientID, in: claims)
        guard let iat = claims["iat"]?.int64Value else { throw OIDCError.invalidToken("iat missing") }
        guard iat <= now + clockSkew else { throw OIDCError.invalidToken("issued in the future") }
        guard now - iat <= Self.maximumAge + clockSkew else { throw OIDCError.invalidToken("issued too long ago") }
        if let exp = claims["exp"] {
            guard let value = exp.int64Value, now < value + clockSkew else { throw OIDCError.invalidToken("expired") }
        }
        guard let jti = claims["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= 256 else {
            throw OIDCError.invalidToken("jti missing")
        }
        guard let events = claims["events"]?.objectValue, events[Self.event]?.objectValue != nil else {
            throw OIDCError.invalidToken("events lacks the back-channel logout event")
        }
        guard claims["nonce"] == nil else { throw OIDCError.invalidToken("nonce present") }
        let sid = claims["sid"]?.stringValue
        let sub = claims["sub"]?.stringValue
        if claims["sid"] != nil && sid == nil || claims["sub"] != nil && sub == nil {
            throw OIDCError.invalidToken("sid or sub is not a string")
        }
        guard sid != nil || sub != nil else { throw OIDCError.invalidToken("neither sid nor sub") }
        return LogoutRequest(sid: sid, sub: sub)
    }
}
