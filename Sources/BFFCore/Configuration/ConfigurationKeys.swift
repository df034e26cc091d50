/// A configuration key of one section, declared once: the gateway's readers read a key by its
/// case, and ``BFFConfiguration/validate()`` names a problem by the same case (``path``), so a key
/// cannot be spelled one way when read and another when reported.
public protocol ConfigurationKey: RawRepresentable<String>, CaseIterable, Sendable {
    /// The section's name in the file (`server`, `oidc`, …); empty at the top level.
    static var section: String { get }
}

extension ConfigurationKey {
    /// The dotted path, e.g. `session.cookieName`.
    public var path: String { Self.section.isEmpty ? rawValue : Self.section + "." + rawValue }
    /// Every key's name (unknown keys are what is not among them).
    public static var names: Set<String> { Set(allCases.map(\.rawValue)) }
}

extension BFFConfiguration {
    /// Top-level keys of the BFF's own configuration.
    public enum Key: String, ConfigurationKey {
        case server, keys, oidc, session, tokens, antiforgery, logout, user
        case staticFiles = "static"
        case admin, diagnostics, managementPrefix, apis
        public static let section = ""
    }
}

extension ServerConfiguration {
    /// `server:`.
    public enum Key: String, ConfigurationKey {
        case listen, publicOrigin, trustedProxies, maxHeaderBytes, idleTimeout, shutdownGrace, environment
        case dataDirectory
        public static let section = "server"
    }
}

extension KeyRing.Key {
    /// One entry of `keys:` (a list: paths are `keys[i].<key>`).
    public enum ConfigKey: String, ConfigurationKey {
        case id, secret
        public static let section = "keys"
    }
}

extension OIDCConfiguration {
    /// `oidc:`.
    public enum Key: String, ConfigurationKey {
        case issuer, clientId, clientSecret, clientAuth, clientKey, clientKeyAlgorithm, clientAssertionAudience, scopes,
            callbackPath,
            postLogoutCallbackPath
        case authorizeParameters, endSessionEndpoint, revocationEndpoint, usePAR, requireIssParameter
        case signingAlgorithms, clockSkew, fetchUserInfo, requestTimeout, dpop
        public static let section = "oidc"
    }
}

extension SessionConfiguration {
    /// `session:` (`sqlite` and `postgres` are the gateway's store subsections).
    public enum Key: String, ConfigurationKey {
        case store, cookieName, sameSite, allowCrossSite, idleTimeout, absoluteTimeout, cleanupInterval
        case storeTimeout, cookieDomain, cookiePath, secure, sqlite, postgres
        public static let section = "session"
    }
}

extension TokenConfiguration {
    /// `tokens:`.
    public enum Key: String, ConfigurationKey {
        case refreshBeforeExpiry, revokeRefreshTokenOnLogout
        public static let section = "tokens"
    }
}

extension LogoutConfiguration {
    /// `logout:`.
    public enum Key: String, ConfigurationKey {
        case frontChannel
        public static let section = "logout"
    }
}

extension AntiForgeryConfiguration {
    /// `antiforgery:`.
    public enum Key: String, ConfigurationKey {
        case headerName, headerValue
        public static let section = "antiforgery"
    }
}

extension UserConfiguration {
    /// `user:`.
    public enum Key: String, ConfigurationKey {
        case anonymousResponse, excludeClaims
        public static let section = "user"
    }
}

extension StaticFilesConfiguration {
    /// `static:`.
    public enum Key: String, ConfigurationKey {
        case root, devServer, fallback
        case indexURL = "indexUrl"
        public static let section = "static"
    }
}

extension AdminConfiguration {
    /// `admin:`.
    public enum Key: String, ConfigurationKey {
        case listen
        public static let section = "admin"
    }
}

extension DiagnosticsConfiguration {
    /// `diagnostics:`.
    public enum Key: String, ConfigurationKey {
        case showTokens
        public static let section = "diagnostics"
    }
}

extension APIRouteConfiguration {
    /// One entry of `apis:` (a list: paths are `apis[i].<key>`).
    public enum Key: String, ConfigurationKey {
        case path, upstream, token, scopes, resource, timeout, websocket, caFile, requireAcr, maxAuthAge, exchange
        public static let section = "apis"
    }
}
