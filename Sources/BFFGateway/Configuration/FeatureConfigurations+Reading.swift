import BFFCore

extension TokenConfiguration {
    /// Reads `tokens:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.duration("refreshBeforeExpiry") { refreshBeforeExpiry = value }
        if let value = section.bool("revokeRefreshTokenOnLogout") { revokeRefreshTokenOnLogout = value }
    }
}

extension LogoutConfiguration {
    /// Reads `logout:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.bool("frontChannel") { frontChannel = value }
    }
}

extension AntiForgeryConfiguration {
    /// Reads `antiforgery:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.string("headerName") { headerName = value }
        if let value = section.string("headerValue") { headerValue = value }
    }
}

extension UserConfiguration {
    /// Reads `user:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.string("anonymousResponse") {
            switch value {
            case "401": anonymousAsNull = false
            case "null": anonymousAsNull = true
            default: section.problem("anonymousResponse", "'\(value)' is not 401 or null", "use 401 or \"null\"")
            }
        } else if section.isExplicitNull("anonymousResponse") {
            anonymousAsNull = true
        }
        if let value = section.stringList("excludeClaims") { excludeClaims = value }
    }
}

extension StaticFilesConfiguration {
    /// Reads `static:` over the values already set, key by key (an explicit null clears one).
    mutating func read(_ section: ConfigSection) {
        for (key, keyPath) in [
            ("root", \StaticFilesConfiguration.root), ("devServer", \.devServer), ("indexUrl", \.indexURL),
        ] {
            if let value = section.string(key) {
                self[keyPath: keyPath] = value
            } else if section.isExplicitNull(key) {
                self[keyPath: keyPath] = nil
            }
        }
        if let value = section.string("fallback") { fallback = value }
    }
}

extension AdminConfiguration {
    /// Reads `admin:`.
    mutating func read(_ section: ConfigSection) {
        if section.isExplicitNull("listen") {
            listen = nil
            _ = section.raw("listen")
        } else if let value = section.string("listen") {
            if GatewayConfigurationLoader.parseListen(value) == nil {
                section.problem("listen", "'\(value)' is not host:port", "write 127.0.0.1:9090 or null")
            }
            listen = value
        }
    }
}

extension DiagnosticsConfiguration {
    /// Reads `diagnostics:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.bool("showTokens") { showTokens = value }
    }
}
