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
        guard text.utf8.count <= 9, let value = Int64(text), value >= 0 else { return nil }
        return value
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
            ageMissing = session.authTime.map { now - $0 > seconds } ?? true
        }
        guard acrMissing || ageMissing else { return nil }
        // Both members whenever the route has them: the new login must satisfy the whole route.
        return .stepUpRequired(acrValues: route.requireAcr.isEmpty ? nil : route.requireAcr, maxAge: maxAge)
    }
}
