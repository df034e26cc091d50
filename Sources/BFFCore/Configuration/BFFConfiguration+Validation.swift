/// One problem found in a configuration, with where it is and how to fix it.
public struct ConfigurationProblem: Sendable, Hashable, CustomStringConvertible {
    /// Dotted path of the offending key, e.g. `session.cookieName`.
    public var path: String
    /// What is wrong.
    public var message: String
    /// How to fix it.
    public var fix: String

    /// Creates a problem.
    public init(path: String, message: String, fix: String) {
        self.path = path
        self.message = message
        self.fix = fix
    }

    /// `path: message (fix: ...)`, one line.
    public var description: String { "\(path): \(message) (fix: \(fix))" }
}

extension BFFConfiguration {
    /// Every problem with this configuration; empty when it is safe to run.
    public func validate() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func add(_ path: String, _ message: String, _ fix: String) {
            problems.append(ConfigurationProblem(path: path, message: message, fix: fix))
        }

        // server
        if !(1...65535).contains(server.port) && server.port != 0 {
            add("server.listen", "port \(server.port) is out of range", "use a port between 1 and 65535")
        }
        let listenIsLoopback = WebURL.isLoopbackHost(
            server.host.hasPrefix("[") || !server.host.contains(":") ? server.host : "[\(server.host)]")
        if let origin = server.publicOrigin {
            if let url = WebURL(origin) {
                if !url.path.isEmpty && url.path != "/" || url.query != nil {
                    add(
                        "server.publicOrigin", "must be scheme://host[:port] without a path",
                        "remove the path from '\(origin)'")
                }
                if url.scheme == "http" && !url.isLoopback {
                    add(
                        "server.publicOrigin", "plain http is only allowed for loopback hosts",
                        "use https://\(url.host)")
                }
            } else {
                add(
                    "server.publicOrigin", "'\(origin)' is not an absolute http(s) origin",
                    "write it as https://app.example.com")
            }
        } else if !listenIsLoopback {
            add(
                "server.publicOrigin", "required when server.listen is not a loopback address",
                "set it to the https origin browsers use, e.g. https://app.example.com")
        }
        if server.maxHeaderBytes < 4096 || server.maxHeaderBytes > 1 << 20 {
            add("server.maxHeaderBytes", "\(server.maxHeaderBytes) is outside 4096...1048576", "use the default 32768")
        }
        if server.environment != "production" && server.environment != "development" {
            add("server.environment", "'\(server.environment)' is not production or development", "use production")
        }

        // keys
        var ids = Set<String>()
        for (index, key) in keys.enumerated() {
            if key.secret.count != 32 {
                add(
                    "keys[\(index)].secret", "key '\(key.id)' is \(key.secret.count) bytes, 32 are required",
                    "generate one with `bff keys generate`")
            }
            if !KeyRing.isValidID(key.id) {
                add(
                    "keys[\(index)].id", "'\(key.id)' is not a valid key id", "use 1-32 characters of A-Z a-z 0-9 . _ -"
                )
            }
            if !ids.insert(key.id).inserted {
                add("keys[\(index)].id", "key id '\(key.id)' appears twice", "give every key its own id")
            }
        }

        // oidc
        if oidc.issuer.isEmpty {
            add("oidc.issuer", "is required", "set it to your IdP's issuer URL, e.g. https://idp.example.com")
        } else if let url = WebURL(oidc.issuer) {
            if url.scheme == "http" && !url.isLoopback {
                add("oidc.issuer", "plain http is only allowed for a loopback IdP", "use the https issuer URL")
            }
            if url.query != nil { add("oidc.issuer", "must not contain a query", "remove the query") }
        } else {
            add("oidc.issuer", "'\(oidc.issuer)' is not an absolute http(s) URL", "write it as https://idp.example.com")
        }
        if oidc.clientID.isEmpty { add("oidc.clientId", "is required", "set the client id registered at the IdP") }
        if oidc.clientSecret?.isEmpty ?? true {
            add(
                "oidc.clientSecret", "is required for a confidential client",
                "set it, e.g. clientSecret: \"env:BFF_OIDC_CLIENT_SECRET\"")
        }
        if oidc.clientAuth == .privateKeyJWT {
            add(
                "oidc.clientAuth", "private_key_jwt is not supported yet",
                "use client_secret_basic or client_secret_post")
        }
        if !oidc.scopes.contains("openid") { add("oidc.scopes", "must contain openid", "add openid to the list") }
        for (path, value) in [
            ("oidc.callbackPath", oidc.callbackPath), ("oidc.postLogoutCallbackPath", oidc.postLogoutCallbackPath),
        ] {
            if !value.hasPrefix("/") || value.hasPrefix("//") || value.contains("?") || value.contains("#") {
                add(path, "'\(value)' is not a local path", "use a path such as /signin-oidc")
            }
        }
        if oidc.callbackPath == oidc.postLogoutCallbackPath {
            add("oidc.postLogoutCallbackPath", "equals oidc.callbackPath", "use /signout-callback-oidc")
        }
        let forbiddenParameters: Set<String> = [
            "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
            "code_challenge_method", "request_uri", "request", "prompt",
        ]
        for name in oidc.authorizeParameters.keys where forbiddenParameters.contains(name) {
            add("oidc.authorizeParameters.\(name)", "is set by the BFF itself", "remove it")
        }
        let supportedAlgorithms: Set<String> = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
        ]
        if oidc.signingAlgorithms.isEmpty {
            add("oidc.signingAlgorithms", "is empty", "use [RS256, PS256, ES256, EdDSA]")
        }
        for algorithm in oidc.signingAlgorithms where !supportedAlgorithms.contains(algorithm) {
            add(
                "oidc.signingAlgorithms", "'\(algorithm)' is not an accepted asymmetric algorithm",
                "remove it; none and HMAC are never accepted")
        }
        for (path, value) in [
            ("oidc.endSessionEndpoint", oidc.endSessionEndpoint), ("oidc.revocationEndpoint", oidc.revocationEndpoint),
        ] {
            if let value, let url = WebURL(value) {
                if url.scheme == "http" && !url.isLoopback {
                    add(path, "plain http is only allowed for loopback", "use https")
                }
            } else if let value {
                add(path, "'\(value)' is not an absolute http(s) URL", "write a full https URL or remove the key")
            }
        }
        if oidc.clockSkew < .zero || oidc.clockSkew > .seconds(600) {
            add("oidc.clockSkew", "must be between 0s and 10m", "use the default 60s")
        }

        // session
        let name = session.cookieName
        if name.isEmpty || !CookieHeader.isToken(Array(name.utf8)[...]) {
            add("session.cookieName", "'\(name)' is not a valid cookie name", "use __Host-bff-session")
        }
        if name.hasPrefix("__Host-") {
            if session.cookieDomain != nil {
                add("session.cookieDomain", "a __Host- cookie must not have a Domain", "remove the domain")
            }
            if session.cookiePath != "/" {
                add("session.cookiePath", "a __Host- cookie must have Path=/", "remove the path")
            }
            if !session.secureCookies {
                add("session.secure", "a __Host- cookie must be Secure", "remove secure: false")
            }
        } else if name.hasPrefix("__Secure-") && !session.secureCookies {
            add("session.secure", "a __Secure- cookie must be Secure", "remove secure: false")
        }
        if session.sameSite == .none && !session.allowCrossSite {
            add(
                "session.sameSite", "none exposes the session to cross-site requests",
                "use strict, or set session.allowCrossSite: true if you really must")
        }
        if session.idleTimeout <= .zero { add("session.idleTimeout", "must be positive", "use 8h") }
        if session.absoluteTimeout <= .zero { add("session.absoluteTimeout", "must be positive", "use 7d") }
        if session.idleTimeout > session.absoluteTimeout {
            add("session.idleTimeout", "is longer than session.absoluteTimeout", "make the idle timeout shorter")
        }

        // antiforgery
        if antiforgery.headerName.isEmpty || !CookieHeader.isToken(Array(antiforgery.headerName.utf8)[...]) {
            add("antiforgery.headerName", "'\(antiforgery.headerName)' is not a header name", "use X-CSRF")
        }
        if antiforgery.headerValue.isEmpty { add("antiforgery.headerValue", "must not be empty", "use 1") }

        // static
        if let devServer = staticFiles.devServer {
            if let url = WebURL(devServer), url.scheme == "http" || url.scheme == "https",
                url.path.isEmpty || url.path == "/", url.query == nil, !devServer.contains("#"),
                !devServer.contains("@")
            {
                if !url.isLoopback && server.environment != "development" {
                    add(
                        "static.devServer", "'\(devServer)' is not a loopback address",
                        "run the dev server on 127.0.0.1, or set server.environment: development")
                }
            } else {
                add("static.devServer", "'\(devServer)' is not an http origin", "write it as http://127.0.0.1:5173")
            }
            if staticFiles.root != nil {
                add(
                    "static.devServer", "is set together with static.root", "use one: the dev server or the built files"
                )
            }
        }

        if let indexURL = staticFiles.indexURL {
            if let url = WebURL(indexURL), !indexURL.contains("#"), !indexURL.contains("@") {
                if url.scheme != "https" && !url.isLoopback {
                    add(
                        "static.indexUrl", "plain http is only allowed for a loopback origin",
                        "use the https URL of index.html")
                }
            } else {
                add(
                    "static.indexUrl", "'\(indexURL)' is not an absolute http(s) URL",
                    "write it as https://cdn.example.com/app/index.html")
            }
            if staticFiles.devServer != nil {
                add("static.indexUrl", "is set together with static.devServer", "use one of them")
            }
        }

        // management prefix
        if !managementPrefix.hasPrefix("/") || managementPrefix.hasSuffix("/") || managementPrefix.count < 2 {
            add("managementPrefix", "'\(managementPrefix)' is not a path like /bff", "use /bff")
        }
        // apis
        var prefixes = Set<String>()
        for (index, route) in apis.enumerated() {
            let path = "apis[\(index)]"
            if !route.path.hasPrefix("/") || route.path.contains("?") || route.path.contains("%")
                || route.path.contains("..")
            {
                add(path + ".path", "'\(route.path)' is not a plain path prefix", "write it as /api/name")
            }
            let normalized =
                route.path.count > 1 && route.path.hasSuffix("/") ? String(route.path.dropLast()) : route.path
            if !prefixes.insert(normalized).inserted {
                add(path + ".path", "'\(route.path)' is routed twice", "keep one entry per prefix")
            }
            if normalized == managementPrefix || normalized.hasPrefix(managementPrefix + "/") || normalized == "/" {
                add(
                    path + ".path", "'\(route.path)' would shadow the BFF's own endpoints",
                    "use a prefix such as /api/name")
            }
            if let upstream = WebURL(route.upstream) {
                if upstream.query != nil { add(path + ".upstream", "must not contain a query", "remove the query") }
            } else {
                add(
                    path + ".upstream", "'\(route.upstream)' is not an absolute http(s) URL",
                    "write it as http://127.0.0.1:5090/base")
            }
            if route.timeout <= .zero { add(path + ".timeout", "must be positive", "use 30s") }
            if let resource = route.resource, WebURL(resource) == nil {
                add(
                    path + ".resource", "'\(resource)' is not an absolute URL (RFC 8707)",
                    "write https://api.example.com")
            }
            if route.resource != nil, route.token.usesUserToken, session.store == .cookie {
                add(
                    path + ".resource",
                    "a user token for a resource is obtained with the refresh token, which cookie mode cannot "
                        + "serialise with the session's other refreshes",
                    "use a server-side session store (memory, sqlite, postgres), or drop resource from this route")
            }
        }
        return problems
    }
}
