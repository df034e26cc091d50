import BFFCore
import Synchronization

/// The readiness probe of the client's credentials (`/readyz`): does the IdP accept them?
extension TokenEndpointClient {
    /// Whether the IdP accepts this client's authentication (a wrong `clientKey` or secret, or a
    /// key the IdP does not know): a refresh grant with a random refresh token must fail for the
    /// grant, not for the client. An acceptance is remembered for the process; any other verdict
    /// is re-probed at most every 30 s, one probe at a time (meanwhile the last verdict stands).
    public func verifyClientAuthentication() async -> ClientAuthenticationVerdict {
        let now = provider.time.now
        switch clientAccepted.begin(now: now) {
        case .known(let verdict): return verdict
        case .probe: break
        }
        let verdict: ClientAuthenticationVerdict
        do {
            let endpoint = try await provider.metadata().tokenEndpoint
            let response = try await post(
                endpoint, form: [("grant_type", "refresh_token"), ("refresh_token", random.token(byteCount: 32))])
            verdict = Self.verdict(
                status: response.status, errorCode: decodeObject(response.body)?["error"]?.stringValue,
                emptyBody: response.body.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        } catch {
            verdict = .unavailable("token endpoint unreachable")
        }
        clientAccepted.finish(verdict, now: now)
        return verdict
    }

    /// Reads the probe's answer. RFC 6749 §5.2: `invalid_client` (any status) or a bare 401 is a
    /// refused client; Glewlwyd answers a refused client 403 with an empty body, and an unknown
    /// refresh token 400 with an empty body. Anything else says nothing about the client.
    static func verdict(status: Int, errorCode: String?, emptyBody: Bool) -> ClientAuthenticationVerdict {
        if errorCode == "invalid_client" { return .refused }
        if let errorCode, status == 400, errorCode.utf8.count <= 64 { return .accepted }  // invalid_grant & co.
        if errorCode == nil, emptyBody, status == 400 { return .accepted }
        if errorCode == nil, emptyBody || status == 401, status == 401 || status == 403 { return .refused }
        if status >= 500 || status == 429 { return .unavailable("token endpoint answered \(status)") }
        return .undetermined("token endpoint answered \(status)\(errorCode.map { " " + $0 } ?? "")")
    }
}

/// What the client-authentication probe found.
public enum ClientAuthenticationVerdict: Sendable, Equatable {
    /// The IdP authenticated the client (the request failed for the grant).
    case accepted
    /// The IdP refused the client's credentials.
    case refused
    /// The token endpoint could not be asked (unreachable, 5xx, 429).
    case unavailable(String)
    /// The answer says nothing about the client (a redirect, a 404, a gateway page in front).
    case undetermined(String)
}

/// The probe's memory: an acceptance for good; another verdict for 30 s; one probe at a time.
final class ClientAcceptance: Sendable {
    enum Start {
        case known(ClientAuthenticationVerdict)
        case probe
    }
    private struct State {
        var verdict: ClientAuthenticationVerdict?
        var probedAt: UnixTime = .min
        var probing = false
    }
    private let state = Mutex(State())
    static let retryAfter: Int64 = 30

    func begin(now: UnixTime) -> Start {
        state.withLock { state in
            if state.verdict == .accepted { return .known(.accepted) }
            if state.probing || (state.verdict != nil && now - state.probedAt < Self.retryAfter) {
                return .known(state.verdict ?? .undetermined("probe in progress"))
            }
            state.probing = true
            return .probe
        }
    }

    func finish(_ verdict: ClientAuthenticationVerdict, now: UnixTime) {
        state.withLock {
            $0.verdict = verdict
            $0.probedAt = now
            $0.probing = false
        }
    }
}
