import BFFCore

extension SessionConfiguration {
    /// Reads `session:` (the gateway's `sqlite` and `postgres` subsections are read by the loader).
    mutating func read(_ section: ConfigSection) {
        if let kind = section.choice(
            "store", fix: "use sqlite, postgres, memory or cookie", SessionStoreKind.init(name:))
        {
            store = kind
        }
        if let value = section.string("cookieName") { cookieName = value }
        if let value = section.choice("sameSite", fix: "use strict or lax", SameSite.init(name:)) { sameSite = value }
        if let value = section.bool("allowCrossSite") { allowCrossSite = value }
        if let value = section.duration("idleTimeout") { idleTimeout = value }
        if let value = section.duration("absoluteTimeout") { absoluteTimeout = value }
        if let value = section.duration("cleanupInterval") { cleanupInterval = value }
        if let value = section.duration("storeTimeout") { storeTimeout = value }
        if let value = section.string("cookieDomain") { cookieDomain = value }
        if let value = section.string("cookiePath") { cookiePath = value }
        if let value = section.bool("secure") { secureCookies = value }
    }
}
