import BFFCore

extension OIDCConfiguration {
    /// Reads `oidc:` over the values already set, key by key (a frontend's `oidc:` overrides the
    /// top-level one only where it has a key; an explicit null clears an optional one).
    mutating func read(_ section: ConfigSection) {
        if let value = section.string("issuer") { issuer = value }
        if let value = section.string("clientId") { clientID = value }
        if let value = section.secret("clientSecret") {
            clientSecret = value
        } else if section.isExplicitNull("clientSecret") {
            clientSecret = nil
        }
        if let auth = section.choice(
            "clientAuth", fix: "use client_secret_basic or client_secret_post", ClientAuthentication.init(name:))
        {
            clientAuth = auth
        }
        if let value = section.stringList("scopes") { scopes = value }
        if let value = section.string("callbackPath") { callbackPath = value }
        if let value = section.string("postLogoutCallbackPath") { postLogoutCallbackPath = value }
        if let value = section.stringMap("authorizeParameters") { authorizeParameters = value }
        for (key, keyPath) in [
            ("endSessionEndpoint", \OIDCConfiguration.endSessionEndpoint), ("revocationEndpoint", \.revocationEndpoint),
        ] {
            if let value = section.string(key) {
                self[keyPath: keyPath] = value
            } else if section.isExplicitNull(key) {
                self[keyPath: keyPath] = nil
            }
        }
        for (key, keyPath) in [("usePAR", \OIDCConfiguration.usePAR), ("requireIssParameter", \.requireIssParameter)] {
            guard let value = section.string(key) else { continue }
            if let parsed = AutoSwitch(name: value) {
                self[keyPath: keyPath] = parsed
            } else {
                section.problem(key, "'\(value)' is not auto, true or false", "use auto")
            }
        }
        if let value = section.stringList("signingAlgorithms") { signingAlgorithms = value }
        if let value = section.duration("clockSkew") { clockSkew = value }
        if let value = section.bool("fetchUserInfo") { fetchUserInfo = value }
        if let value = section.duration("requestTimeout") { requestTimeout = value }
    }
}
