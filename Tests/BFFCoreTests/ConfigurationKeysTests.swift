import BFFCore
import Testing

/// Every key is declared once (`ConfigurationKeys.swift`): each problem validation reports is named
/// by a declared key of its section (or an entry of a declared list), so a misspelt path cannot
/// creep back in.
@Suite("Configuration keys")
struct ConfigurationKeysTests {
    /// Declared paths: `section.key`, `list[i].key`, and `oidc.authorizeParameters.<name>`.
    static func isDeclared(_ path: String) -> Bool {
        func declared<Key: ConfigurationKey>(_: Key.Type) -> Set<String> { Set(Key.allCases.map(\.path)) }
        let plain =
            declared(BFFConfiguration.Key.self).union(declared(ServerConfiguration.Key.self))
            .union(declared(OIDCConfiguration.Key.self)).union(declared(SessionConfiguration.Key.self))
            .union(declared(TokenConfiguration.Key.self)).union(declared(LogoutConfiguration.Key.self))
            .union(declared(AntiForgeryConfiguration.Key.self)).union(declared(UserConfiguration.Key.self))
            .union(declared(StaticFilesConfiguration.Key.self)).union(declared(AdminConfiguration.Key.self))
            .union(declared(DiagnosticsConfiguration.Key.self))
        if plain.contains(path) { return true }
        if path.hasPrefix(OIDCConfiguration.Key.authorizeParameters.path + ".") { return true }
        // `keys[3].secret`, `apis[0].path`: a declared list and one of its entries' keys.
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let bracket = parts[0].firstIndex(of: "[") else { return false }
        switch String(parts[0][..<bracket]) {
        case KeyRing.Key.ConfigKey.section: return KeyRing.Key.ConfigKey.names.contains(parts[1])
        case APIRouteConfiguration.Key.section: return APIRouteConfiguration.Key.names.contains(parts[1])
        default: return false
        }
    }

    @Test func everyProblemIsNamedByADeclaredKey() {
        var configuration = BFFConfiguration()
        configuration.server.port = 70_000
        configuration.server.host = "0.0.0.0"
        configuration.server.maxHeaderBytes = 1
        configuration.server.environment = "staging"
        configuration.keys = [.init(id: "bad id!", secret: [1, 2]), .init(id: "bad id!", secret: [1])]
        configuration.oidc.issuer = "http://idp.example.com/?q"
        configuration.oidc.clientSecret = nil
        configuration.oidc.scopes = ["profile"]
        configuration.oidc.callbackPath = "nope"
        configuration.oidc.postLogoutCallbackPath = "nope"
        configuration.oidc.authorizeParameters = ["state": "x"]
        configuration.oidc.signingAlgorithms = ["HS256"]
        configuration.oidc.endSessionEndpoint = "http://idp.example.com/logout"
        configuration.oidc.revocationEndpoint = "not a url"
        configuration.oidc.clockSkew = .seconds(-1)
        configuration.session.cookieDomain = "example.com"
        configuration.session.cookiePath = "/x"
        configuration.session.secureCookies = false
        configuration.session.sameSite = .none
        configuration.session.idleTimeout = .seconds(-1)
        configuration.session.absoluteTimeout = .seconds(-2)
        configuration.antiforgery.headerName = ""
        configuration.antiforgery.headerValue = ""
        configuration.staticFiles.devServer = "http://dev.example.com:5173"
        configuration.staticFiles.root = "/srv"
        configuration.staticFiles.indexURL = "http://cdn.example.com/index.html"
        configuration.managementPrefix = "bff/"
        configuration.apis = [
            APIRouteConfiguration(path: "api?x", upstream: "not a url", timeout: .zero),
            APIRouteConfiguration(path: "/bff/x", upstream: "http://127.0.0.1:1/?q"),
        ]
        let problems = configuration.validate()
        #expect(problems.count >= 30, "the configuration breaks most rules: \(problems.count)")
        for problem in problems {
            #expect(Self.isDeclared(problem.path), "\(problem)")
        }
        // The check itself refuses what is not declared.
        #expect(!Self.isDeclared("oidc.isuer") && !Self.isDeclared("apis[0].upstreem") && !Self.isDeclared("x"))
    }
}
