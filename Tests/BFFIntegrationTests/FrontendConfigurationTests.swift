import BFFCore
import Testing

@testable import BFFGateway

/// `frontends:` in the configuration file (SPEC §11.3): key-by-key inheritance, prefixes, and every
/// mistake reported at its position with a fix.
@Suite("Frontends in the configuration file")
struct FrontendConfigurationTests {
    static let base = """
        server: {publicOrigin: "https://www.example.com"}
        keys: [{id: k1, secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]
        session: {store: memory, idleTimeout: 30m}
        oidc: {issuer: "https://idp.example.com", clientId: main, clientSecret: s, scopes: [openid, profile]}
        apis:
          - {path: /api/orders, upstream: "http://127.0.0.1:5090"}
        """

    func load(_ frontends: String) -> Result<GatewayConfiguration, ProblemList> {
        GatewayConfigurationLoader.load(yaml: Self.base + "\nfrontends:\n" + frontends, environment: [:])
    }

    func problems(_ frontends: String) -> [String] {
        if case .failure(let list) = load(frontends) { return list.problems.map { "\($0.path): \($0.message)" } }
        return []
    }

    @Test func entriesInheritKeyByKeyAndPrefixFrontendsMoveUnderTheirPrefix() throws {
        let configuration = try load(
            """
              - name: shop
                match: {host: shop.example.com}
                publicOrigin: "https://shop.example.com"
                oidc: {clientId: shop, scopes: [openid, email]}
                session: {idleTimeout: 10m}
                static: {devServer: "http://127.0.0.1:5173"}
              - name: docs
                match: {pathPrefix: /docs}
                oidc: {issuer: "https://other-idp.example.com", clientSecret: t}
                apis:
                  - {path: /api/pages, upstream: "http://127.0.0.1:5091", token: none}
            """
        ).get()
        let shop = try #require(configuration.frontends.first)
        let docs = try #require(configuration.frontends.last)
        #expect(shop.match == FrontendMatch(host: "shop.example.com"))
        #expect(shop.bff.frontend == "shop")
        #expect(shop.bff.oidc.issuer == "https://idp.example.com", "inherited")
        #expect(shop.bff.oidc.clientID == "shop")
        #expect(shop.bff.oidc.clientSecret == "s", "inherited")
        #expect(shop.bff.oidc.scopes == ["openid", "email"])
        #expect(shop.bff.session.idleTimeout == .seconds(600))
        #expect(shop.bff.session.cookieName == "__Host-bff-shop")
        #expect(shop.bff.server.publicOrigin == "https://shop.example.com")
        #expect(shop.bff.apis.map(\.path) == ["/api/orders"], "the default list")
        #expect(shop.bff.managementPrefix == "/bff")

        #expect(docs.bff.oidc.issuer == "https://other-idp.example.com")
        #expect(docs.bff.oidc.clientID == "main")
        #expect(docs.bff.oidc.clientSecret == "t")
        #expect(shop.bff.staticFiles.devServer == "http://127.0.0.1:5173")
        #expect(docs.bff.staticFiles.devServer == nil)
        #expect(docs.bff.session.idleTimeout == .seconds(1800), "the top-level value")
        #expect(docs.bff.server.publicOrigin == "https://www.example.com")
        #expect(docs.bff.managementPrefix == "/docs/bff")
        #expect(docs.bff.homePath == "/docs/", "login and logout return under the prefix by default")
        #expect(shop.bff.homePath == "/")
        #expect(docs.bff.oidc.callbackPath == "/docs/signin-oidc")
        #expect(docs.bff.oidc.postLogoutCallbackPath == "/docs/signout-callback-oidc")
        #expect(docs.bff.apis.map(\.path) == ["/docs/api/pages"], "its own list, under its prefix")
        #expect(docs.bff.apis.first?.token == TokenRequirement.none)
    }

    @Test func mistakesAreReportedAtTheirPosition() {
        let found = problems(
            """
              - name: Shop_1
                match: {host: shop.example.com}
              - name: b
                match: {}
                session: {store: sqlite}
                keys: []
              - name: c
                match: {pathPrefix: "docs/"}
                oidc: {clientId: ""}
              - name: c
                match: {host: "c.example.com"}
                publicOrigin: "https://d.example.com"
                apis: [{path: /api/x}]
              - name: e
                match: {host: shop.example.com}
                publicOrigin: "https://shop.example.com"
                session: {cookieName: "__Host-bff-c"}
                extra: 1
            """)
        let expected = [
            "frontends[0].name: 'Shop_1' is not 1-32 of a-z, 0-9 and -",
            "frontends[0].publicOrigin: is required with match.host",
            "frontends[1].match: needs host and/or pathPrefix",
            "frontends[1].session.store: is shared by every frontend",
            "frontends[1].keys: cannot be set per frontend",
            "frontends[2].match.pathPrefix: 'docs/' is not a path prefix like /shop",
            "frontends[3].name: 'c' is also frontends[2]'s name",
            "frontends[3].publicOrigin: 'https://d.example.com' is not on match.host c.example.com",
            "frontends[3].apis[0]: needs path and upstream",
            "frontends[4].extra: cannot be set per frontend",
            "frontends[4].match: is the same as frontends[0]'s",
            "frontends[4].session.cookieName: '__Host-bff-c' is also frontends[2]'s, on the same host",
            "frontends[2].oidc.clientId: is required",
        ]
        for problem in expected {
            #expect(found.contains(problem), "missing: \(problem)\nfound: \(found.joined(separator: "\n"))")
        }
        #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    }

    /// Cookies are not scoped by port: one host on two ports is one cookie jar.
    @Test func oneCookieNameOnOneHostIsRefusedWhateverThePorts() {
        let found = problems(
            """
              - {name: a, match: {host: "app.example.com:8443"}, publicOrigin: "https://app.example.com:8443", session: {cookieName: __Host-x}}
              - {name: b, match: {host: "app.example.com:9443"}, publicOrigin: "https://app.example.com:9443", session: {cookieName: __Host-x}}
              - {name: c, match: {host: "other.example.com"}, publicOrigin: "https://other.example.com", session: {cookieName: __Host-x}}
            """)
        #expect(found == ["frontends[1].session.cookieName: '__Host-x' is also frontends[0]'s, on the same host"])
    }

    @Test func frontendsMustBeAList() {
        #expect(problems("  shop: {}") == ["frontends: must be a list"])
    }

    @Test func environmentOverridesReachAFrontendsKeys() throws {
        let configuration = try GatewayConfigurationLoader.load(
            yaml: Self.base + "\nfrontends:\n  - {name: shop, match: {pathPrefix: /shop}}\n",
            environment: ["BFF_FRONTENDS_0_OIDC_CLIENT_ID": "from-env"]
        ).get()
        #expect(configuration.frontends.first?.bff.oidc.clientID == "from-env")
    }
}
