import BFFCore
import BFFOIDC
import Crypto
import Logging
import Synchronization

/// Admits one log line per distinct cause per `interval` seconds: a misconfigured IdP fails every
/// user's refresh, and one line a minute says so without flooding the log. Holds at most 64 causes.
final class WarningThrottle: Sendable {
    let interval: Int64
    private let lastLogged = Mutex<[String: UnixTime]>([:])

    init(interval: Int64) { self.interval = interval }

    /// Whether a line for `cause` may be written now (and records it if so).
    func admit(_ cause: String, now: UnixTime) -> Bool {
        lastLogged.withLock { last in
            if let at = last[cause], now - at < interval { return false }
            if last.count >= 64 { last = last.filter { now - $0.value < interval } }
            if last.count >= 64 { return false }
            last[cause] = now
            return true
        }
    }
}
