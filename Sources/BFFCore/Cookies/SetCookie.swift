/// The SameSite attribute of a cookie.
public struct SameSite: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable {
        case strict = "Strict"
        case lax = "Lax"
        case none = "None"
    }
    let base: Base

    /// `SameSite=Strict`: never sent on cross-site requests (the session cookie's default).
    public static let strict = SameSite(base: .strict)
    /// `SameSite=Lax`: sent on top-level cross-site GET navigations (login transactions).
    public static let lax = SameSite(base: .lax)
    /// `SameSite=None`: sent cross-site; only with explicit configuration.
    public static let none = SameSite(base: .none)

    /// Parses `strict`, `lax` or `none` (any case).
    public init?(name: String) {
        switch name.lowercased() {
        case "strict": self = .strict
        case "lax": self = .lax
        case "none": self = .none
        default: return nil
        }
    }

    init(base: Base) { self.base = base }

    /// The attribute value.
    public var description: String { base.rawValue }
}

/// A `Set-Cookie` header value with secure defaults (`Path=/; Secure; HttpOnly; SameSite=Strict`).
public struct SetCookie: Sendable, Hashable {
    /// Cookie name.
    public var name: String
    /// Cookie value (must be cookie-octets; sealed values are base64url).
    public var value: String
    /// `Path`, `/` by default (required by the `__Host-` prefix).
    public var path: String = "/"
    /// `Max-Age` in seconds; nil for a browser-session cookie, 0 to delete.
    public var maxAge: Int64?
    /// `Secure`; on by default, also on http://localhost where browsers accept it.
    public var secure: Bool = true
    /// `HttpOnly`; on by default.
    public var httpOnly: Bool = true
    /// `SameSite`; Strict by default.
    public var sameSite: SameSite = .strict

    /// Creates a cookie with the secure defaults.
    public init(name: String, value: String, maxAge: Int64? = nil, sameSite: SameSite = .strict) {
        self.name = name
        self.value = value
        self.maxAge = maxAge
        self.sameSite = sameSite
    }

    /// A cookie that deletes `name` (empty value, `Max-Age=0`, an expiry in the past).
    public static func expired(name: String, sameSite: SameSite = .strict) -> SetCookie {
        SetCookie(name: name, value: "", maxAge: 0, sameSite: sameSite)
    }

    /// The header value.
    public var headerValue: String {
        var result = "\(name)=\(value); Path=\(path)"
        if let maxAge {
            result += "; Max-Age=\(max(0, maxAge))"
            if maxAge <= 0 { result += "; Expires=Thu, 01 Jan 1970 00:00:00 GMT" }
        }
        if secure { result += "; Secure" }
        if httpOnly { result += "; HttpOnly" }
        result += "; SameSite=\(sameSite)"
        return result
    }
}
