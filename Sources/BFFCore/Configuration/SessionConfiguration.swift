/// Where sessions live.
public struct SessionStoreKind: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable { case memory, cookie, sqlite, postgres }
    let base: Base
    /// In-process, lost on restart.
    public static let memory = SessionStoreKind(base: .memory)
    /// The whole session sealed into chunked cookies.
    public static let cookie = SessionStoreKind(base: .cookie)
    /// SQLite file (its own issue).
    public static let sqlite = SessionStoreKind(base: .sqlite)
    /// PostgreSQL (its own issue).
    public static let postgres = SessionStoreKind(base: .postgres)
    /// Parses the configuration name.
    public init?(name: String) {
        guard let base = Base(rawValue: name) else { return nil }
        self.base = base
    }
    init(base: Base) { self.base = base }
    /// Whether sessions are kept server-side (the cookie holds only a ticket).
    public var isServerSide: Bool { base != .cookie }
    /// The configuration name.
    public var description: String { base.rawValue }
}

/// `session:` settings.
public struct SessionConfiguration: Sendable {
    /// Store kind, `sqlite` by default (the gateway keeps it in `./bff-data/sessions.sqlite`).
    public var store: SessionStoreKind
    /// Session cookie name, `__Host-bff-session` by default.
    public var cookieName: String
    /// SameSite of the session cookie, Strict by default.
    public var sameSite: SameSite
    /// Must be true to allow `sameSite: none`.
    public var allowCrossSite: Bool
    /// Sliding idle timeout, 8 h by default.
    public var idleTimeout: Duration
    /// Absolute lifetime, 7 days by default.
    public var absoluteTimeout: Duration
    /// Interval of expired-session cleanup, 10 min by default.
    public var cleanupInterval: Duration
    /// Longest wait for the session store on a request, 2 s by default; then 503 `store-unavailable`.
    public var storeTimeout: Duration
    /// Whether the `Secure` attribute is set (always true unless a test turns it off).
    public var secureCookies: Bool
    /// Path attribute of the session cookie, `/` (required by `__Host-`).
    public var cookiePath: String
    /// Domain attribute; nil (required by `__Host-`).
    public var cookieDomain: String?
    /// Session cookies of the other frontends served by the same process (set by the gateway):
    /// like this BFF's own, they are never forwarded to an upstream.
    public var siblingCookieNames: [String] = []

    /// Creates session settings with the defaults.
    public init(
        store: SessionStoreKind = .sqlite, cookieName: String = "__Host-bff-session", sameSite: SameSite = .strict,
        allowCrossSite: Bool = false, idleTimeout: Duration = .seconds(8 * 3600),
        absoluteTimeout: Duration = .seconds(7 * 86400), cleanupInterval: Duration = .seconds(600),
        secureCookies: Bool = true, cookiePath: String = "/", cookieDomain: String? = nil,
        storeTimeout: Duration = .seconds(2)
    ) {
        self.store = store
        self.cookieName = cookieName
        self.sameSite = sameSite
        self.allowCrossSite = allowCrossSite
        self.idleTimeout = idleTimeout
        self.absoluteTimeout = absoluteTimeout
        self.cleanupInterval = cleanupInterval
        self.storeTimeout = storeTimeout
        self.secureCookies = secureCookies
        self.cookiePath = cookiePath
        self.cookieDomain = cookieDomain
    }
}
