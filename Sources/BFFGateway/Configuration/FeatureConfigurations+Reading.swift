import BFFCore

extension TokenConfiguration {
    /// Reads `tokens:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.duration(Key.refreshBeforeExpiry) { refreshBeforeExpiry = value }
        if let value = section.bool(Key.revokeRefreshTokenOnLogout) { revokeRefreshTokenOnLogout = value }
    }
}

extension LogoutConfiguration {
    /// Reads `logout:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.bool(Key.frontChannel) { frontChannel = value }
    }
}

extension AntiForgeryConfiguration {
    /// Reads `antiforgery:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.string(Key.headerName) { headerName = value }
        if let value = section.string(Key.headerValue) { headerValue = value }
    }
}

extension UserConfiguration {
    /// Reads `user:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.string(Key.anonymousResponse) {
            switch value {
            case "401": anonymousAsNull = false
            case "null": anonymousAsNull = true
            default: section.problem(Key.anonymousResponse, "'\(value)' is not 401 or null", "use 401 or \"null\"")
            }
        } else if section.isExplicitNull(Key.anonymousResponse) {
            anonymousAsNull = true
        }
        if let value = section.stringList(Key.excludeClaims) { excludeClaims = value }
    }
}

extension StaticFilesConfiguration {
    /// Reads `static:` over the values already set, key by key (an explicit null clears one).
    mutating func read(_ section: ConfigSection) {
        for (key, keyPath) in [
            (Key.root, \StaticFilesConfiguration.root), (.devServer, \.devServer), (.indexURL, \.indexURL),
        ] {
            if let value = section.string(key) {
                self[keyPath: keyPath] = value
            } else if section.isExplicitNull(key) {
                self[keyPath: keyPath] = nil
            }
        }
        if let value = section.string(Key.fallback) { fallback = value }
    }
}

extension AdminConfiguration {
    /// Reads `admin:`.
    mutating func read(_ section: ConfigSection) {
        if section.isExplicitNull(Key.listen) {
            listen = nil
            _ = section.raw(Key.listen)
        } else if let value = section.string(Key.listen) {
            if GatewayConfigurationLoader.parseListen(value) == nil {
                section.problem(Key.listen, "'\(value)' is not host:port", "write 127.0.0.1:9090 or null")
            }
            listen = value
        }
    }
}

extension DiagnosticsConfiguration {
    /// Reads `diagnostics:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.bool(Key.showTokens) { showTokens = value }
    }
}
