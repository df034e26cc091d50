import BFFCore

extension OIDCConfiguration {
    /// Reads `oidc:`.
    mutating func read(_ section: ConfigSection) {
        issuer = section.string("issuer") ?? ""
        clientID = section.string("clientId") ?? ""
        clientSecret = section.secret("clientSecret")
        if let auth = section.choice(
            "clientAuth", fix: "use client_secret_basic or client_secret_post", ClientAuthentication.init(name:))
        {
            clientAuth = auth
        }
        if let value = section.stringList("scopes") { scopes = value }
        if let value = section.string("callbackPath") { callbackPath = value }
        if let value = section.string("postLogoutCallbackPath") { postLogoutCallbackPath = value }
        if let value = section.stringMap("authorizeParameters") { authorizeParameters = value }
        endSessionEndpoint = section.string("endSessionEndpoint")
        revocationEndpoint = section.string("revocationEndpoint")
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
