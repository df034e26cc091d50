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
        // Problems are named by declared keys (ConfigurationKeys.swift); `at` is for positions in
        // lists and maps (`keys[0].secret`, `apis[2].path`).
        func add(_ key: some ConfigurationKey, _ message: String, _ fix: String) { add(at: key.path, message, fix) }
        func add(at path: String, _ message: String, _ fix: String) {
            problems.append(ConfigurationProblem(path: path, message: message, fix: fix))
        }
        func add<Key: ConfigurationKey>(_ key: Key, entry index: Int, _ message: String, _ fix: String) {
            add(at: "\(Key.section)[\(index)].\(key.rawValue)", message, fix)
        }

        // server
        if !(1...65535).contains(server.port) && server.port != 0 {
            add(ServerConfiguration.Key.listen, "port \(server.port) is out of range", "use a port between 1 and 65535")
        }
        let listenIsLoopback = WebURL.isLoopbackHost(
            server.host.hasPrefix("[") || !server.host.contains(":") ? server.host : "[\(server.host)]")
        if let origin = server.publicOrigin {
            if let url = WebURL(origin) {
                if !url.path.isEmpty && url.path != "/" || url.query != nil {
                    add(
                        ServerConfiguration.Key.publicOrigin, "must be scheme://host[:port] without a path",
                        "remove the path from '\(origin)'")
                }
                if url.scheme == "http" && !url.isLoopback {
                    add(
                        ServerConfiguration.Key.publicOrigin, "plain http is only allowed for loopback hosts",
                        "use https://\(url.host)")
                }
            } else {
                add(
                    ServerConfiguration.Key.publicOrigin, "'\(origin)' is not an absolute http(s) origin",
                    "write it as https://app.example.com")
            }
        } else if !listenIsLoopback {
            add(
                ServerConfiguration.Key.publicOrigin,
                "required when \(ServerConfiguration.Key.listen.path) is not a loopback address",
                "set it to the https origin browsers use, e.g. https://app.example.com")
        }
        if server.maxHeaderBytes < 4096 || server.maxHeaderBytes > 1 << 20 {
            add(
                ServerConfiguration.Key.maxHeaderBytes, "\(server.maxHeaderBytes) is outside 4096...1048576",
                "use the default 32768")
        }
        if server.environment != "production" && server.environment != "development" {
            add(
                ServerConfiguration.Key.environment, "'\(server.environment)' is not production or development",
                "use production")
        }

        // keys
        var ids = Set<String>()
        for (index, key) in keys.enumerated() {
            if key.secret.count != 32 {
                add(
                    KeyRing.Key.ConfigKey.secret, entry: index,
                    "key '\(key.id)' is \(key.secret.count) bytes, 32 are required",
                    "generate one with `bff keys generate`")
            }
            if !KeyRing.isValidID(key.id) {
                add(
                    KeyRing.Key.ConfigKey.id, entry: index, "'\(key.id)' is not a valid key id",
                    "use 1-32 characters of A-Z a-z 0-9 . _ -"
                )
            }
            if !ids.insert(key.id).inserted {
                add(
                    KeyRing.Key.ConfigKey.id, entry: index, "key id '\(key.id)' appears twice",
                    "give every key its own id")
            }
        }

        // oidc
        if oidc.issuer.isEmpty {
            add(
                OIDCConfiguration.Key.issuer, "is required",
                "set it to your IdP's issuer URL, e.g. https://idp.example.com")
        } else if let url = WebURL(oidc.issuer) {
            if url.scheme == "http" && !url.isLoopback {
                add(
                    OIDCConfiguration.Key.issuer, "plain http is only allowed for a loopback IdP",
                    "use the https issuer URL")
            }
            if url.query != nil { add(OIDCConfiguration.Key.issuer, "must not contain a query", "remove the query") }
        } else {
            add(
                OIDCConfiguration.Key.issuer, "'\(oidc.issuer)' is not an absolute http(s) URL",
                "write it as https://idp.example.com")
        }
        if oidc.clientID.isEmpty {
            add(OIDCConfiguration.Key.clientId, "is required", "set the client id registered at the IdP")
        }
        if oidc.clientAuth == .privateKeyJWT {
            if oidc.clientKey == nil {
                add(
                    OIDCConfiguration.Key.clientKey, "is required for private_key_jwt",
                    "run `bff keys client-key --out client-key.pem`, register the printed JWKS at the IdP and set "
                        + "clientKey: \"file:./client-key.pem\"")
            }
        } else if oidc.clientKey != nil {
            add(
                OIDCConfiguration.Key.clientKey, "is set, but clientAuth is \(oidc.clientAuth)",
                "set clientAuth: private_key_jwt to use the key, or remove clientKey")
        }
        if oidc.clientAuth != .privateKeyJWT, oidc.clientSecret?.isEmpty ?? true {
            add(
                OIDCConfiguration.Key.clientSecret, "is required for a confidential client",
                "set it, e.g. clientSecret: \"env:BFF_OIDC_CLIENT_SECRET\"")
        }
        if !oidc.scopes.contains("openid") {
            add(OIDCConfiguration.Key.scopes, "must contain openid", "add openid to the list")
        }
        for (path, value) in [
            (OIDCConfiguration.Key.callbackPath, oidc.callbackPath),
            (.postLogoutCallbackPath, oidc.postLogoutCallbackPath),
        ] {
            if !value.hasPrefix("/") || value.hasPrefix("//") || value.contains("?") || value.contains("#") {
                add(path, "'\(value)' is not a local path", "use a path such as /signin-oidc")
            }
        }
        if oidc.callbackPath == oidc.postLogoutCallbackPath {
            add(
                OIDCConfiguration.Key.postLogoutCallbackPath, "equals \(OIDCConfiguration.Key.callbackPath.path)",
                "use /signout-callback-oidc")
        }
        let forbiddenParameters: Set<String> = [
            "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
            "code_challenge_method", "request_uri", "request", "prompt",
        ]
        for name in oidc.authorizeParameters.keys where forbiddenParameters.contains(name) {
            add(
                at: OIDCConfiguration.Key.authorizeParameters.path + ".\(name)", "is set by the BFF itself", "remove it"
            )
        }
        let supportedAlgorithms: Set<String> = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
        ]
        if oidc.signingAlgorithms.isEmpty {
            add(OIDCConfiguration.Key.signingAlgorithms, "is empty", "use [RS256, PS256, ES256, EdDSA]")
        }
        for algorithm in oidc.signingAlgorithms where !supportedAlgorithms.contains(algorithm) {
            add(
                OIDCConfiguration.Key.signingAlgorithms, "'\(algorithm)' is not an accepted asymmetric algorithm",
                "remove it; none and HMAC are never accepted")
        }
        for (path, value) in [
            (OIDCConfiguration.Key.endSessionEndpoint, oidc.endSessionEndpoint),
            (.revocationEndpoint, oidc.revocationEndpoint),
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
            add(OIDCConfiguration.Key.clockSkew, "must be between 0s and 10m", "use the default 60s")
        }

        // session
        let name = session.cookieName
        if name.isEmpty || !CookieHeader.isToken(Array(name.utf8)[...]) {
            add(SessionConfiguration.Key.cookieName, "'\(name)' is not a valid cookie name", "use __Host-bff-session")
        }
        if name.hasPrefix("__Host-") {
            if session.cookieDomain != nil {
                add(
                    SessionConfiguration.Key.cookieDomain, "a __Host- cookie must not have a Domain",
                    "remove the domain")
            }
            if session.cookiePath != "/" {
                add(SessionConfiguration.Key.cookiePath, "a __Host- cookie must have Path=/", "remove the path")
            }
            if !session.secureCookies {
                add(SessionConfiguration.Key.secure, "a __Host- cookie must be Secure", "remove secure: false")
            }
        } else if name.hasPrefix("__Secure-") && !session.secureCookies {
            add(SessionConfiguration.Key.secure, "a __Secure- cookie must be Secure", "remove secure: false")
        }
        if session.sameSite == .none && !session.allowCrossSite {
            add(
                SessionConfiguration.Key.sameSite, "none exposes the session to cross-site requests",
                "use strict, or set \(SessionConfiguration.Key.allowCrossSite.path): true if you really must")
        }
        if session.idleTimeout <= .zero { add(SessionConfiguration.Key.idleTimeout, "must be positive", "use 8h") }
        if session.absoluteTimeout <= .zero {
            add(SessionConfiguration.Key.absoluteTimeout, "must be positive", "use 7d")
        }
        if session.idleTimeout > session.absoluteTimeout {
            add(
                SessionConfiguration.Key.idleTimeout, "is longer than \(SessionConfiguration.Key.absoluteTimeout.path)",
                "make the idle timeout shorter")
        }

        // antiforgery
        if antiforgery.headerName.isEmpty || !CookieHeader.isToken(Array(antiforgery.headerName.utf8)[...]) {
            add(
                AntiForgeryConfiguration.Key.headerName, "'\(antiforgery.headerName)' is not a header name",
                "use X-CSRF")
        }
        if antiforgery.headerValue.isEmpty {
            add(AntiForgeryConfiguration.Key.headerValue, "must not be empty", "use 1")
        }

        // static
        if let devServer = staticFiles.devServer {
            if let url = WebURL(devServer), url.scheme == "http" || url.scheme == "https",
                url.path.isEmpty || url.path == "/", url.query == nil, !devServer.contains("#"),
                !devServer.contains("@")
            {
                if !url.isLoopback && server.environment != "development" {
                    add(
                        StaticFilesConfiguration.Key.devServer, "'\(devServer)' is not a loopback address",
                        "run the dev server on 127.0.0.1, or set \(ServerConfiguration.Key.environment.path): development"
                    )
                }
            } else {
                add(
                    StaticFilesConfiguration.Key.devServer, "'\(devServer)' is not an http origin",
                    "write it as http://127.0.0.1:5173")
            }
            if staticFiles.root != nil {
                add(
                    StaticFilesConfiguration.Key.devServer,
                    "is set together with \(StaticFilesConfiguration.Key.root.path)",
                    "use one: the dev server or the built files"
                )
            }
        }

        if let indexURL = staticFiles.indexURL {
            if let url = WebURL(indexURL), !indexURL.contains("#"), !indexURL.contains("@") {
                if url.scheme != "https" && !url.isLoopback {
                    add(
                        StaticFilesConfiguration.Key.indexURL, "plain http is only allowed for a loopback origin",
                        "use the https URL of index.html")
                }
            } else {
                add(
                    StaticFilesConfiguration.Key.indexURL, "'\(indexURL)' is not an absolute http(s) URL",
                    "write it as https://cdn.example.com/app/index.html")
            }
            if staticFiles.devServer != nil {
                add(
                    StaticFilesConfiguration.Key.indexURL,
                    "is set together with \(StaticFilesConfiguration.Key.devServer.path)", "use one of them")
            }
        }

        // management prefix
        if !managementPrefix.hasPrefix("/") || managementPrefix.hasSuffix("/") || managementPrefix.count < 2 {
            add(Key.managementPrefix, "'\(managementPrefix)' is not a path like /bff", "use /bff")
        }
        // apis
        var prefixes = Set<String>()
        for (index, route) in apis.enumerated() {
            typealias RouteKey = APIRouteConfiguration.Key
            if !route.path.hasPrefix("/") || route.path.contains("?") || route.path.contains("%")
                || route.path.contains("..")
            {
                add(RouteKey.path, entry: index, "'\(route.path)' is not a plain path prefix", "write it as /api/name")
            }
            let normalized =
                route.path.count > 1 && route.path.hasSuffix("/") ? String(route.path.dropLast()) : route.path
            if !prefixes.insert(normalized).inserted {
                add(RouteKey.path, entry: index, "'\(route.path)' is routed twice", "keep one entry per prefix")
            }
            if normalized == managementPrefix || normalized.hasPrefix(managementPrefix + "/") || normalized == "/" {
                add(
                    RouteKey.path, entry: index, "'\(route.path)' would shadow the BFF's own endpoints",
                    "use a prefix such as /api/name")
            }
            if let upstream = WebURL(route.upstream) {
                if upstream.query != nil {
                    add(RouteKey.upstream, entry: index, "must not contain a query", "remove the query")
                }
            } else {
                add(
                    RouteKey.upstream, entry: index, "'\(route.upstream)' is not an absolute http(s) URL",
                    "write it as http://127.0.0.1:5090/base")
            }
            if route.timeout <= .zero { add(RouteKey.timeout, entry: index, "must be positive", "use 30s") }
            if let resource = route.resource, WebURL(resource) == nil {
                add(
                    RouteKey.resource, entry: index, "'\(resource)' is not an absolute URL (RFC 8707)",
                    "write https://api.example.com")
            }
            if route.token == .exchange {
                if let exchange = route.exchange {
                    if exchange.audience?.isEmpty ?? true, exchange.resource == nil {
                        add(
                            RouteKey.exchange, entry: index, "needs an audience or a resource",
                            "write exchange: {audience: orders}")
                    }
                    let parts = [exchange.audience ?? ""] + exchange.scopes
                    if parts.contains(where: { $0.utf8.contains { $0 < 0x21 || $0 == 0x7F } && !$0.isEmpty }) {
                        add(
                            RouteKey.exchange, entry: index, "audience and scopes must be printable without spaces",
                            "write exchange: {audience: orders, scopes: [orders.read]}")
                    }
                    if let resource = exchange.resource, WebURL(resource) == nil {
                        add(
                            RouteKey.exchange, entry: index, "resource '\(resource)' is not an absolute URL",
                            "write https://api.example.com")
                    }
                } else {
                    add(
                        RouteKey.exchange, entry: index, "is required with token: exchange",
                        "write exchange: {audience: orders, scopes: [orders.read]}")
                }
                if session.store == .cookie {
                    add(
                        RouteKey.token, entry: index,
                        "an exchanged token is kept in the server-side session, which cookie mode does not have",
                        "use a server-side session store (memory, sqlite, postgres)")
                }
            } else if route.exchange != nil {
                add(
                    RouteKey.exchange, entry: index, "only applies to token: exchange",
                    "set token: exchange or remove it")
            }
            if route.requiresStepUp, route.token != .user, route.token != .exchange {
                add(
                    RouteKey.token, entry: index, "requireAcr and maxAuthAge need the user's session",
                    "use token: user on this route")
            }
            for value in route.requireAcr where !StepUp.isValidACR(value) {
                add(
                    RouteKey.requireAcr, entry: index, "'\(value)' is not an acr value",
                    "use 1-64 characters of A-Z a-z 0-9 : . _ / -")
            }
            if let age = route.maxAuthAge, age <= .zero {
                add(RouteKey.maxAuthAge, entry: index, "must be positive", "write 5m")
            }
            if route.resource != nil, route.token.usesUserToken, session.store == .cookie {
                add(
                    RouteKey.resource, entry: index,
                    "a user token for a resource is obtained with the refresh token, which cookie mode cannot "
                        + "serialise with the session's other refreshes",
                    "use a server-side session store (memory, sqlite, postgres), or drop resource from this route")
            }
        }
        return problems
    }
}
