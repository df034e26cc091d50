import BFFCore

extension OIDCConfiguration {
    /// Reads `oidc:` over the values already set, key by key (a frontend's `oidc:` overrides the
    /// top-level one only where it has a key; an explicit null clears an optional one).
    mutating func read(_ section: ConfigSection) {
        if let value = section.string(Key.issuer) { issuer = value }
        if let value = section.string(Key.clientId) { clientID = value }
        if let value = section.secret(Key.clientSecret) {
            clientSecret = value
        } else if section.isExplicitNull(Key.clientSecret) {
            clientSecret = nil
        }
        if let auth = section.choice(
            Key.clientAuth, fix: "use client_secret_basic or client_secret_post", ClientAuthentication.init(name:))
        {
            clientAuth = auth
        }
        if let value = section.stringList(Key.scopes) { scopes = value }
        if let value = section.string(Key.callbackPath) { callbackPath = value }
        if let value = section.string(Key.postLogoutCallbackPath) { postLogoutCallbackPath = value }
        if let value = section.stringMap(Key.authorizeParameters) { authorizeParameters = value }
        for (key, keyPath) in [
            (Key.endSessionEndpoint, \OIDCConfiguration.endSessionEndpoint),
            (.revocationEndpoint, \.revocationEndpoint),
        ] {
            if let value = section.string(key) {
                self[keyPath: keyPath] = value
            } else if section.isExplicitNull(key) {
                self[keyPath: keyPath] = nil
            }
        }
        for (key, keyPath) in [(Key.usePAR, \OIDCConfiguration.usePAR), (.requireIssParameter, \.requireIssParameter)] {
            guard let value = section.string(key) else { continue }
            if let parsed = AutoSwitch(name: value) {
                self[keyPath: keyPath] = parsed
            } else {
                section.problem(key, "'\(value)' is not auto, true or false", "use auto")
            }
        }
        if let value = section.stringList(Key.signingAlgorithms) { signingAlgorithms = value }
        if let value = section.duration(Key.clockSkew) { clockSkew = value }
        if let value = section.bool(Key.fetchUserInfo) { fetchUserInfo = value }
        if let value = section.duration(Key.requestTimeout) { requestTimeout = value }
    }
}
