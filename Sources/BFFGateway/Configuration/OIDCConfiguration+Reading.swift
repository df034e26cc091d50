import BFFCore
import BFFOIDC

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
            Key.clientAuth, fix: "use client_secret_basic, client_secret_post or private_key_jwt",
            ClientAuthentication.init(name:))
        {
            clientAuth = auth
        }
        let keyAlgorithm = section.choice(
            Key.clientKeyAlgorithm, fix: "use ES256, RS256 or PS256", JWSAlgorithm.init(rawValue:))
        if let text = section.secret(Key.clientKey) {
            do {
                clientKey = try JWSPrivateKey(text: text, algorithm: keyAlgorithm)
            } catch {
                section.problem(
                    Key.clientKey, "cannot be used: \(error.reason)",
                    "point it at an unencrypted PEM or private JWK (P-256 or RSA ≥ 2048 bits), e.g. one made by "
                        + "`bff keys client-key --out client-key.pem`")
            }
        } else if section.isExplicitNull(Key.clientKey) {
            clientKey = nil
        } else if let keyAlgorithm {
            section.problem(
                Key.clientKeyAlgorithm, "\(keyAlgorithm.rawValue) is set without clientKey",
                "set clientKey in the same section, or remove clientKeyAlgorithm")
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
        if let audience = section.choice(
            Key.clientAssertionAudience, fix: "use endpoint, tokenEndpoint or issuer",
            ClientAssertionAudience.init(rawValue:))
        {
            clientAssertionAudience = audience
        }
        if let mode = section.choice(Key.dpop, fix: "use off, auto or required", DPoPMode.init(rawValue:)) {
            dpop = mode
        }
    }
}
