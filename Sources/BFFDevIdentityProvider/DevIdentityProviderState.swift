import BFFCore

/// What the development IdP remembers: pending authorization requests, IdP sessions, codes,
/// tokens — and counters tests read.
actor DevIdentityProviderState {
    private var usedAssertionIDs: [String: UnixTime] = [:]
    struct AuthorizationRequest: Sendable {
        var clientID: String
        var redirectURI: String
        var scope: [String]
        var state: String?
        var nonce: String?
        var codeChallenge: String
        var prompt: String?
        /// RFC 9449 §10: the key the code is bound to.
        var dpopJKT: String?
        /// Step-up: `acr_values` and `max_age` asked for.
        var acrValues: [String] = []
        var maxAge: Int64? = nil
        var expiresAt: UnixTime
    }
    struct IdPSession: Sendable {
        var user: DevUser
        var sid: String
        var authTime: UnixTime
        /// `pwd` (password) or `mfa` (password and the one-time code).
        var acr: String = "pwd"
    }
    struct Code: Sendable {
        var request: AuthorizationRequest
        var user: DevUser
        var sid: String
        var authTime: UnixTime
        var acr: String = "pwd"
        var expiresAt: UnixTime
    }
    struct RefreshGrant: Sendable {
        var family: String
        var clientID: String
        var user: DevUser
        var sid: String
        var scope: [String]
        var expiresAt: UnixTime
        var used: Bool
        /// The DPoP key the family's tokens are bound to; refreshes must prove it.
        var dpopJKT: String? = nil
        /// The login's `auth_time` and `acr`, repeated in refreshed ID tokens.
        var authTime: UnixTime? = nil
        var acr: String? = nil
    }

    private(set) var pendingRequests: [String: AuthorizationRequest] = [:]
    private(set) var sessions: [String: IdPSession] = [:]  // cookie value -> session
    /// Which clients obtained tokens in which IdP session (sid -> client ids).
    private var participants: [String: Set<String>] = [:]
    private var codes: [String: Code] = [:]
    private var usedCodes: Set<String> = []
    private var refreshTokens: [String: RefreshGrant] = [:]
    private var revokedFamilies: Set<String> = []
    private var accessTokens:
        [String: (user: DevUser?, clientID: String, expiresAt: UnixTime, family: String?, jkt: String?)] = [:]

    /// Counters for tests.
    private(set) var statistics = DevIdentityProviderStatistics()

    func addPending(_ id: String, _ request: AuthorizationRequest) {
        if pendingRequests.count > 10_000 { pendingRequests.removeAll() }
        pendingRequests[id] = request
    }
    func takePending(_ id: String, now: UnixTime) -> AuthorizationRequest? {
        guard let request = pendingRequests.removeValue(forKey: id), request.expiresAt > now else { return nil }
        return request
    }
    func peekPending(_ id: String) -> AuthorizationRequest? { pendingRequests[id] }

    func createSession(_ cookie: String, _ session: IdPSession) { sessions[cookie] = session }
    func session(_ cookie: String) -> IdPSession? { sessions[cookie] }
    func recordParticipant(sid: String, clientID: String) { participants[sid, default: []].insert(clientID) }

    /// Ends an IdP session; returns the clients that took part (to notify) and the session's user.
    @discardableResult
    func endSessionNotifying(sid: String) -> (clients: Set<String>, subject: String?) {
        let subject =
            sessions.values.first { $0.sid == sid }?.user.subject
            ?? refreshTokens.values.first { $0.sid == sid }?.user.subject
        endSession(sid: sid)
        return (participants.removeValue(forKey: sid) ?? [], subject)
    }

    func countBackchannel(delivered: Bool) {
        if delivered { statistics.backchannelLogoutsDelivered += 1 } else { statistics.backchannelLogoutsFailed += 1 }
    }

    func endSession(sid: String) {
        sessions = sessions.filter { $0.value.sid != sid }
        for (token, grant) in refreshTokens where grant.sid == sid {
            revokedFamilies.insert(grant.family)
            _ = token
        }
        statistics.endSessionRequests += 1
    }

    func issueCode(_ code: String, _ value: Code) { codes[code] = value }
    func redeemCode(_ code: String, now: UnixTime) -> Code? {
        guard !usedCodes.contains(code) else { return nil }
        usedCodes.insert(code)
        guard let value = codes.removeValue(forKey: code), value.expiresAt > now else { return nil }
        return value
    }

    func storeRefresh(_ token: String, _ grant: RefreshGrant) { refreshTokens[token] = grant }

    enum RefreshOutcome {
        case ok(RefreshGrant)
        case invalid
    }

    /// Rotation with reuse detection: a used token kills its whole family.
    func useRefresh(_ token: String, clientID: String, jkt: String?, now: UnixTime) -> RefreshOutcome {
        statistics.refreshRequests += 1
        guard var grant = refreshTokens[token], grant.clientID == clientID else { return .invalid }
        // A bound family is refreshed only with a proof of its key (the token is not spent otherwise).
        if let bound = grant.dpopJKT, bound != jkt { return .invalid }
        if grant.used || revokedFamilies.contains(grant.family) {
            revokedFamilies.insert(grant.family)
            statistics.refreshReuseDetected += grant.used ? 1 : 0
            return .invalid
        }
        guard grant.expiresAt > now else { return .invalid }
        grant.used = true
        refreshTokens[token] = grant
        return .ok(grant)
    }

    func storeAccess(
        _ token: String, user: DevUser?, clientID: String, expiresAt: UnixTime, family: String?, jkt: String? = nil
    ) {
        accessTokens[token] = (user, clientID, expiresAt, family, jkt)
    }
    /// The `cnf.jkt` of a current access token: `.some(nil)` for a bearer token, nil when unknown.
    func accessTokenBinding(_ token: String, now: UnixTime) -> String?? {
        guard let entry = accessTokens[token], entry.expiresAt > now else { return nil }
        if let family = entry.family, revokedFamilies.contains(family) { return nil }
        return .some(entry.jkt)
    }
    /// A current access token's user, client and scope (token exchange checks its subject).
    func accessTokenGrant(_ token: String, now: UnixTime) -> (user: DevUser, clientID: String, family: String?)? {
        guard let entry = accessTokens[token], entry.expiresAt > now, let user = entry.user else { return nil }
        if let family = entry.family, revokedFamilies.contains(family) { return nil }
        return (user, entry.clientID, entry.family)
    }

    func accessTokenUser(_ token: String, now: UnixTime) -> DevUser? {
        guard let entry = accessTokens[token], entry.expiresAt > now else { return nil }
        if let family = entry.family, revokedFamilies.contains(family) { return nil }
        return entry.user
    }

    func isCurrentClientToken(_ token: String, now: UnixTime) -> Bool {
        guard let entry = accessTokens[token] else { return false }
        return entry.user == nil && entry.expiresAt > now
    }

    func revoke(_ token: String, clientID: String) {
        statistics.revocationRequests += 1
        if let grant = refreshTokens[token], grant.clientID == clientID {
            revokedFamilies.insert(grant.family)
            statistics.refreshTokensRevoked += 1
        } else if let entry = accessTokens[token], entry.clientID == clientID {
            accessTokens[token] = nil
        }
    }

    /// Records a client-assertion `jti`; false when it was used before (a replay). Expired ones
    /// are forgotten.
    func useAssertionID(_ id: String, expiresAt: UnixTime, now: UnixTime) -> Bool {
        usedAssertionIDs = usedAssertionIDs.filter { $0.value > now - 5 }
        guard usedAssertionIDs[id] == nil else { return false }
        usedAssertionIDs[id] = expiresAt
        return true
    }

    func countClientAuthentication(_ method: String, refusedBecause reason: String?) {
        if let reason {
            statistics.clientAuthenticationsRefused[reason, default: 0] += 1
        } else {
            statistics.clientAuthentications[method, default: 0] += 1
        }
    }

    func countDPoP(refused reason: String?) {
        if let reason { statistics.dpopProofsRefused[reason, default: 0] += 1 } else { statistics.dpopBoundTokens += 1 }
    }

    func countAssertionAudience(_ kind: String) { statistics.clientAssertionAudiences[kind, default: 0] += 1 }

    func countTokenRequest(_ grantType: String) {
        statistics.tokenRequests[grantType, default: 0] += 1
    }
    func countLogin() { statistics.logins += 1 }
}

/// Counters the development IdP keeps (for tests and the demo).
public struct DevIdentityProviderStatistics: Sendable, Equatable {
    /// Token requests by grant type.
    public var tokenRequests: [String: Int] = [:]
    /// Successful client authentications at the token and revocation endpoints, by method
    /// (`client_secret_basic`, `client_secret_post`, `private_key_jwt`).
    public var clientAuthentications: [String: Int] = [:]
    /// Accepted client assertions by the `aud` they named: `endpoint` (the URL called) or `issuer`.
    public var clientAssertionAudiences: [String: Int] = [:]
    /// Refused client authentications, by reason (`assertion signature`, `assertion jti replayed`, …).
    public var clientAuthenticationsRefused: [String: Int] = [:]
    /// Refresh-token requests (valid or not).
    public var refreshRequests = 0
    /// DPoP proofs refused at the token endpoint, by reason.
    public var dpopProofsRefused: [String: Int] = [:]
    /// Token responses with DPoP-bound (`cnf.jkt`) access tokens.
    public var dpopBoundTokens = 0
    /// Refresh tokens presented a second time.
    public var refreshReuseDetected = 0
    /// Revocation requests.
    public var revocationRequests = 0
    /// Refresh-token families revoked.
    public var refreshTokensRevoked = 0
    /// end_session calls that ended a session.
    public var endSessionRequests = 0
    /// Successful password logins.
    public var logins = 0
    /// Logout tokens a client's back-channel endpoint accepted (HTTP 200).
    public var backchannelLogoutsDelivered = 0
    /// Logout tokens that were refused or could not be delivered.
    public var backchannelLogoutsFailed = 0
}
