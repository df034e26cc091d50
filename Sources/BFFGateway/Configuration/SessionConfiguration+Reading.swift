import BFFCore

extension SessionConfiguration {
    /// Reads `session:` (the gateway's `sqlite` and `postgres` subsections are read by the loader).
    mutating func read(_ section: ConfigSection) {
        if let kind = section.choice(
            Key.store, fix: "use sqlite, postgres, memory or cookie", SessionStoreKind.init(name:))
        {
            store = kind
        }
        if let value = section.string(Key.cookieName) { cookieName = value }
        if let value = section.choice(Key.sameSite, fix: "use strict or lax", SameSite.init(name:)) { sameSite = value }
        if let value = section.bool(Key.allowCrossSite) { allowCrossSite = value }
        if let value = section.duration(Key.idleTimeout) { idleTimeout = value }
        if let value = section.duration(Key.absoluteTimeout) { absoluteTimeout = value }
        if let value = section.duration(Key.cleanupInterval) { cleanupInterval = value }
        if let value = section.duration(Key.storeTimeout) { storeTimeout = value }
        if let value = section.string(Key.cookieDomain) { cookieDomain = value }
        if let value = section.string(Key.cookiePath) { cookiePath = value }
        if let value = section.bool(Key.secure) { secureCookies = value }
    }
}
