/// Step-up authentication (SPEC §11.4): routes that ask for an `acr` or a recent `auth_time`, the
/// login parameters that ask the IdP for them, and the callback's check of what came back.
public enum StepUp {
    /// An `acr` value: 1–64 characters of `A-Z a-z 0-9 : . _ / -` (URNs and short names).
    public static func isValidACR(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 64
            && value.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                    || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
                    || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "-")
            }
    }

    /// `acrValues` of `/bff/login` (space-separated, at most 8): nil when malformed.
    public static func parseACRValues(_ text: String) -> [String]? {
        let values = text.split(separator: " ").map(String.init)
        guard !values.isEmpty, values.count <= 8, values.allSatisfy(isValidACR) else { return nil }
        return values
    }

    /// `maxAge` of `/bff/login`: whole seconds, 0 to 10⁸.
    public static func parseMaxAge(_ text: String) -> Int64? {
        guard text.utf8.count <= 9, let value = Int64(text), value >= 0, value <= 100_000_000 else { return nil }
        return value
    }

    /// An `auth_time` as the gateway keeps it: nil unless it is a time between 1970 and `now`
    /// plus the clock skew (an IdP's absurd value must not pass for a recent login, nor overflow).
    public static func plausibleAuthTime(_ value: Int64?, now: UnixTime, skew: Int64) -> UnixTime? {
        guard let value, value >= 0, value <= now + skew else { return nil }
        return value
    }

    /// Whether `authTime` is at most `maxAge` (+ `skew`) seconds before `now`, without overflow;
    /// false for nil or an implausible value.
    public static func isRecent(_ authTime: UnixTime?, maxAge: Int64, now: UnixTime, skew: Int64) -> Bool {
        guard let authTime = plausibleAuthTime(authTime, now: now, skew: skew) else { return false }
        let (age, overflow) = now.subtractingReportingOverflow(authTime)
        return !overflow && age <= maxAge + skew
    }

    /// The refusal for `session` on `route`, or nil when the session satisfies the route. A
    /// session without `auth_time` never satisfies a `maxAuthAge` (fail closed).
    public static func problem(route: APIRouteConfiguration, session: Session, now: UnixTime) -> Problem? {
        guard route.requiresStepUp else { return nil }
        let acrMissing =
            !route.requireAcr.isEmpty && !(session.authenticationContext.map(route.requireAcr.contains) ?? false)
        var ageMissing = false
        var maxAge: Int64?
        if let limit = route.maxAuthAge {
            let seconds = limit.components.seconds
            maxAge = seconds
            // The stored auth_time was checked at login (not before 1970, not after now + skew).
            if let authTime = session.authTime {
                let (age, overflow) = now.subtractingReportingOverflow(authTime)
                ageMissing = overflow || age > seconds
            } else {
                ageMissing = true
            }
        }
        guard acrMissing || ageMissing else { return nil }
        // Both members whenever the route has them: the new login must satisfy the whole route.
        return .stepUpRequired(acrValues: route.requireAcr.isEmpty ? nil : route.requireAcr, maxAge: maxAge)
    }
}
