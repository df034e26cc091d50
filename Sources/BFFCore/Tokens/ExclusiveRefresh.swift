/// The decision a user-token refresh makes inside the session's exclusive section — the store's
/// lock on the session, which with PostgreSQL holds across instances (STYLE rule 7: the rule alone,
/// testable without a store or an IdP).
///
/// The caller planned to spend `planned` (the refresh token of the copy it loaded). By the time it
/// holds the lock, another request or instance may have refreshed already: the stored copy then
/// has another refresh token or access token, and spending `planned` would replay a rotated token
/// (IdPs such as Glewlwyd revoke the whole family on replay).
public enum ExclusiveRefresh: Equatable, Sendable {
    /// Refreshed meanwhile and the stored access token is still valid: use it, send nothing.
    case useStored
    /// Send the refresh with this token — always the stored one, never the loaded copy's.
    case refresh(with: String)
    /// The stored session holds no refresh token any more (ended, or the grant is gone).
    case sessionGone

    /// Decides from the stored tokens, the token the caller planned to spend, the access token
    /// of its loaded copy, and the time.
    public static func decide(stored: TokenSet, planned: String, loadedAccessToken: String?, now: UnixTime) -> Self {
        let changedMeanwhile = stored.refreshToken != planned || stored.accessToken != loadedAccessToken
        if changedMeanwhile, stored.accessToken != nil, stored.accessTokenExpiresAt.map({ $0 > now }) ?? true {
            return .useStored
        }
        guard let refreshToken = stored.refreshToken else { return .sessionGone }
        return .refresh(with: refreshToken)
    }
}
