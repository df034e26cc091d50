import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFForwarder
import BFFHummingbird
import BFFOIDC
import BFFTesting
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Testing

@testable import BFFGateway

/// Three frontends in one gateway, with two development IdPs (SPEC §11.3): `shop` by host
/// (127.0.0.1) on IdP A, `admin` by host (localhost) on IdP B, `docs` by host and path prefix
/// (localhost/docs) on IdP A with its own client. Each frontend's API route goes to a sample API
/// that accepts only its own IdP's tokens. Loaded from YAML, through the production builder.
@Suite("Several frontends and identity providers in one gateway")
struct MultiFrontendTests {
    struct Setup: Sendable {
        let port: Int
        let adminPort: Int
        let issuerA: String
        let issuerB: String
        var shop: String { "http://127.0.0.1:\(port)" }
        var admin: String { "http://localhost:\(port)" }
        var docs: String { "http://localhost:\(port)/docs" }
        let gateway: Gateway
        let idpA: DevIdentityProvider
        let idpB: DevIdentityProvider
    }

    static let secret = "multi-frontend-test-secret"

    static func yaml(port: Int, idpA: Int, idpB: Int, apiA: Int, apiB: Int, admin: Int = 0) -> String {
        """
        server: {listen: "127.0.0.1:\(port)", environment: development, publicOrigin: "http://127.0.0.1:\(port)"}
        admin: {listen: "127.0.0.1:\(admin)"}
        keys: [{id: k1, secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]
        session: {store: memory}
        oidc: {issuer: "http://127.0.0.1:\(idpA)", clientId: shop, clientSecret: \(secret)}
        apis:
          - {path: /api/weather, upstream: "http://127.0.0.1:\(apiA)/weatherforecast", token: user}
        frontends:
          - name: shop
            match: {host: "127.0.0.1:\(port)"}
            publicOrigin: "http://127.0.0.1:\(port)"
            session: {cookieName: "__Host-bff-session"}
          - name: admin
            match: {host: "localhost:\(port)"}
            publicOrigin: "http://localhost:\(port)"
            session: {cookieName: "__Host-bff-session"}  # another host: the same name is allowed
            oidc: {issuer: "http://127.0.0.1:\(idpB)", clientId: admin}
            apis:
              - {path: /api/weather, upstream: "http://127.0.0.1:\(apiB)/weatherforecast", token: user}
          - name: docs
            match: {host: "localhost:\(port)", pathPrefix: /docs}
            publicOrigin: "http://localhost:\(port)"
            oidc: {clientId: docs}
        """
    }

    static func client(_ id: String, origin: String) -> DevClient {
        DevClient(
            clientID: id, clientSecret: secret, redirectURIs: [origin + "/signin-oidc"],
            postLogoutRedirectURIs: [origin + "/signout-callback-oidc"],
            backchannelLogoutURI: origin + "/bff/backchannel")
    }

    static func run(_ body: @Sendable (Setup) async throws -> Void) async throws {
        let port = try await TestServers.freePort()
        let (idpPortA, idpPortB) = (try await TestServers.freePort(), try await TestServers.freePort())
        let (apiA, apiB) = (try await TestServers.freePort(), try await TestServers.freePort())
        let adminPort = try await TestServers.freePort()
        let loaded = GatewayConfigurationLoader.load(
            yaml: yaml(port: port, idpA: idpPortA, idpB: idpPortB, apiA: apiA, apiB: apiB, admin: adminPort),
            environment: [:])
        let configuration = try loaded.get()
        #expect(configuration.frontends.map(\.name) == ["shop", "admin", "docs"])
        let (issuerA, issuerB) = ("http://127.0.0.1:\(idpPortA)", "http://127.0.0.1:\(idpPortB)")
        let idpA = try DevIdentityProvider(
            configuration: .init(
                issuer: issuerA,
                clients: [
                    client("shop", origin: "http://127.0.0.1:\(port)"),
                    client("docs", origin: "http://localhost:\(port)/docs"),
                ]))
        let idpB = try DevIdentityProvider(
            configuration: .init(issuer: issuerB, clients: [client("admin", origin: "http://localhost:\(port)")]))
        let http = AsyncHTTPClientTransport.makeClient()
        let forwarder = NIOUpstream()
        let gateway = try Gateway.build(
            configuration: configuration, keyRing: try KeyRing(keys: configuration.bff.keys),
            http: AsyncHTTPClientTransport(client: http), upstream: forwarder, logger: TestEnvironment.quietLogger)
        let logger = TestEnvironment.quietLogger
        let services: [any Service] = [
            gateway.service, forwarder, try #require(gateway.admin),
            idpA.makeApplication(host: "127.0.0.1", port: idpPortA, logger: logger),
            idpB.makeApplication(host: "127.0.0.1", port: idpPortB, logger: logger),
            SampleAPI.makeApplication(idp: idpA, port: apiA, logger: logger),
            SampleAPI.makeApplication(idp: idpB, port: apiB, logger: logger),
        ]
        let setup = Setup(
            port: port, adminPort: adminPort, issuerA: issuerA, issuerB: issuerB, gateway: gateway, idpA: idpA,
            idpB: idpB)
        do {
            try await TestServers.withRunning(
                services + gateway.maintenance, ports: [port, idpPortA, idpPortB, apiA, apiB, adminPort]
            ) {
                try await body(setup)
            }
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    /// Logs in at `base` (a frontend's origin plus prefix) through `issuer`'s form.
    static func login(_ browser: TestBrowser, base: String, issuer: String, user: String = "alice") async throws {
        let start = try await browser.get(base + "/bff/login")
        try #require(start.status == 302, "login at \(base) answered \(start.status): \(start.body)")
        // The pending login's cookie names its frontend (each frontend counts and consumes its own).
        let frontend = base.hasSuffix("/docs") ? "docs" : base.contains("localhost") ? "admin" : "shop"
        #expect(start.headerValues("set-cookie").contains { $0.hasPrefix("__Host-bff-login.\(frontend).") })
        let location = try #require(start.location)
        #expect(location.hasPrefix(issuer + "/"), "\(base) logs in at its own IdP")
        let form = try await browser.get(location)
        let page = form.status == 200 ? form : try await browser.follow(form)
        let requestID = try #require(TestEnvironment.extract(#"name="request_id" value=""#, from: page.body))
        let submitted = try await browser.postForm(
            issuer + "/authorize", [("request_id", requestID), ("username", user), ("password", user)])
        try #require(submitted.status == 302, "login form answered \(submitted.status)")
        let callback = try await browser.get(try #require(submitted.location))
        #expect(callback.status == 302, "callback at \(base): \(callback.status) \(callback.body)")
        // Without returnUrl: the frontend's own home (a prefix frontend's is under its prefix).
        let home = base + "/"  // (the browser shows it absolute: the origin, then `/` or `/docs/`)
        #expect(callback.location == home, "\(base) returned to \(callback.location ?? "-")")
    }

    static let csrf = [("X-CSRF", "1")]

    /// One browser logged in at each frontend (alice at shop and docs on IdP A, bob at admin on
    /// IdP B). (A browser shuts its client down when it goes.)
    static func loggedIn(_ setup: Setup) async throws -> (shop: TestBrowser, admin: TestBrowser, docs: TestBrowser) {
        let (shop, admin, docs) = (TestBrowser(), TestBrowser(), TestBrowser())
        try await login(shop, base: setup.shop, issuer: setup.issuerA)
        try await login(admin, base: setup.admin, issuer: setup.issuerB, user: "bob")
        try await login(docs, base: setup.docs, issuer: setup.issuerA)
        return (shop, admin, docs)
    }

    @Test func eachFrontendLogsInAtItsOwnIdPAndCallsItsOwnAPIs() async throws {
        try await Self.run { setup in
            let (shop, admin, docs) = try await Self.loggedIn(setup)
            // Each frontend's cookie, named after it.
            #expect(shop.cookies(host: "127.0.0.1")["__Host-bff-session"] != nil)
            #expect(admin.cookies(host: "localhost")["__Host-bff-session"] != nil)
            #expect(docs.cookies(host: "localhost")["__Host-bff-docs"] != nil)
            // /bff/user shows each frontend's own IdP's claims.
            let shopUser = try await shop.get(setup.shop + "/bff/user", headers: Self.csrf)
            #expect(shopUser.status == 200)
            #expect(shopUser.body.contains(#""value":"alice""#))
            let adminUser = try await admin.get(setup.admin + "/bff/user", headers: Self.csrf)
            #expect(adminUser.status == 200)
            #expect(adminUser.body.contains(#""value":"bob""#))
            let docsUser = try await docs.get(setup.docs + "/bff/user", headers: Self.csrf)
            #expect(docsUser.status == 200, "\(docsUser.body)")
            #expect(docsUser.body.contains(#""value":"/docs/bff/logout?sid="#), "the logout URL carries the prefix")
            // The API routes: each frontend's token reaches the API that trusts its IdP only.
            for (browser, url) in [
                (shop, setup.shop + "/api/weather"), (admin, setup.admin + "/api/weather"),
                (docs, setup.docs + "/api/weather"),
            ] {
                let page = try await browser.get(url, headers: Self.csrf)
                #expect(page.status == 200, "\(url): \(page.status) \(page.body)")
            }
            // Each session's store key carries its frontend's tag (`bff sessions --frontend`).
            let records = try await #require(setup.gateway.store).list(
                issuer: nil, idpSessionID: nil, subject: nil, limit: 10)
            #expect(records.count == 3)
            for name in ["shop", "admin", "docs"] {
                #expect(records.filter { $0.key.starts(with: SessionManager.frontendTag(name)) }.count == 1, "\(name)")
            }
            // A prefix frontend's route exists only under its prefix; admin's (same host) has none there.
            #expect(try await docs.get(setup.admin + "/docs/api/other", headers: Self.csrf).status == 404)

            // Metrics per frontend: the same route of three frontends is three series, and the
            // pools of every frontend's routes are reported (not only the first frontend's).
            let scrape = MetricsTests.Scrape(
                try await shop.get("http://127.0.0.1:\(setup.adminPort)/metrics").body)
            for (name, route) in [("shop", "/api/weather"), ("admin", "/api/weather"), ("docs", "/docs/api/weather")] {
                #expect(scrape[#"bff_login_total{frontend="\#(name)",outcome="success"}"#] == 1, "\(name)")
                #expect(scrape[#"bff_sessions_started_total{frontend="\#(name)"}"#] == 1, "\(name)")
                #expect(
                    scrape[
                        #"bff_http_requests_total{frontend="\#(name)",method="GET",route="\#(route)",status="200"}"#
                    ] == 1, "\(name)")
                #expect(
                    scrape.text.contains(
                        #"bff_upstream_connections{frontend="\#(name)",api="\#(route)",state="idle"}"#),
                    "\(name)")
            }
            let unlabelled = scrape.samples.keys.filter {
                $0.hasPrefix("bff_http_requests_total{") && !$0.contains("frontend=")
            }
            #expect(unlabelled.isEmpty, "no series without a frontend: \(unlabelled)")
        }
    }

    @Test func aCookieOfOneFrontendIsAnonymousOnEveryOther() async throws {
        try await Self.run { setup in
            let (shop, admin, docs) = try await Self.loggedIn(setup)
            let shopCookie = try #require(shop.cookies(host: "127.0.0.1")["__Host-bff-session"])
            let adminCookie = try #require(admin.cookies(host: "localhost")["__Host-bff-session"])
            let docsCookie = try #require(docs.cookies(host: "localhost")["__Host-bff-docs"])
            let thief = TestBrowser()
            // Copied under the other frontend's cookie name, on its host: anonymous, both ways, for
            // the same IdP (shop ↔ docs) as for another (shop ↔ admin, admin ↔ docs).
            let cases: [(value: String, host: String, name: String, url: String)] = [
                (shopCookie, "localhost", "__Host-bff-docs", setup.docs),
                (docsCookie, "127.0.0.1", "__Host-bff-session", setup.shop),
                (shopCookie, "localhost", "__Host-bff-session", setup.admin),
                (adminCookie, "127.0.0.1", "__Host-bff-session", setup.shop),
                (adminCookie, "localhost", "__Host-bff-docs", setup.docs),
                (docsCookie, "localhost", "__Host-bff-session", setup.admin),
            ]
            for (value, host, name, url) in cases {
                for cookie in ["__Host-bff-session", "__Host-bff-session", "__Host-bff-docs"] {
                    thief.setCookie(host: host, name: cookie, value: nil)
                }
                thief.setCookie(host: host, name: name, value: value)
                let user = try await thief.get(url + "/bff/user", headers: Self.csrf)
                #expect(user.status == 401, "\(name) copied to \(url) was accepted")
                let api = try await thief.get(url + "/api/weather", headers: Self.csrf)
                #expect(api.status == 401, "\(name) copied to \(url) reached the API")
            }
            // The owners still have their sessions; a foreign frontend's cookie never goes upstream.
            #expect(try await shop.get(setup.shop + "/bff/user", headers: Self.csrf).status == 200)
            #expect(try await docs.get(setup.docs + "/bff/user", headers: Self.csrf).status == 200)
            let shared = TestBrowser()
            shared.setCookie(host: "localhost", name: "__Host-bff-session", value: adminCookie)
            shared.setCookie(host: "localhost", name: "__Host-bff-docs", value: docsCookie)
            #expect(try await shared.get(setup.docs + "/bff/user", headers: Self.csrf).status == 200)
            #expect(try await shared.get(setup.admin + "/bff/user", headers: Self.csrf).status == 200)
        }
    }

    @Test func backChannelLogoutOfOneIdPEndsOnlyItsFrontendsSessions() async throws {
        try await Self.run { setup in
            let (shop, admin, docs) = try await Self.loggedIn(setup)
            // Logout at IdP B (its own session cookie): it posts a logout token to admin's back-channel.
            let ended = try await admin.get(setup.issuerB + "/end_session")
            #expect(ended.status < 400)
            #expect(await setup.idpB.statistics().backchannelLogoutsDelivered == 1)
            #expect(try await admin.get(setup.admin + "/bff/user", headers: Self.csrf).status == 401)
            #expect(try await shop.get(setup.shop + "/bff/user", headers: Self.csrf).status == 200)
            #expect(try await docs.get(setup.docs + "/bff/user", headers: Self.csrf).status == 200)
            // Then IdP A ends docs' IdP session: docs ends, shop (another IdP session) stays.
            _ = try await docs.get(setup.issuerA + "/end_session")
            #expect(try await docs.get(setup.docs + "/bff/user", headers: Self.csrf).status == 401)
            #expect(try await shop.get(setup.shop + "/bff/user", headers: Self.csrf).status == 200)
        }
    }

    @Test func aRequestOfNoFrontendReachesNoSession() async throws {
        try await Self.run { setup in
            for target in ["/bff/user", "/api/weather", "/bff/login", "/signin-oidc?code=x&state=y"] {
                let client = try await RawConnection.open(port: setup.port)
                try await client.send("GET \(target) HTTP/1.1\r\nHost: evil.example\r\nX-CSRF: 1\r\n\r\n")
                let head = try await eventually(until: { $0.contains("\r\n\r\n") && $0.contains("}") }) {
                    client.received.head
                }
                await client.reset()
                #expect(head.hasPrefix("HTTP/1.1 404"), "\(target): \(head)")
                #expect(head.contains("urn:bff:problem:no-frontend"), "\(target): \(head)")
            }
            // Counted, as no frontend's (frontend="", route unmatched).
            let scrape = MetricsTests.Scrape(
                try await TestBrowser().get("http://127.0.0.1:\(setup.adminPort)/metrics").body)
            #expect(
                scrape[#"bff_http_requests_total{frontend="",method="GET",route="unmatched",status="404"}"#] == 4,
                "\(scrape.text)")
        }
    }

    /// Two Host fields (RFC 9112 §3.2): 400, whichever frontend either names, on API routes (the
    /// event-loop handler) and endpoints alike; never forwarded.
    @Test func aRequestWithTwoHostsIsRefused() async throws {
        try await Self.run { setup in
            for target in ["/bff/user", "/api/weather", "/docs/api/weather"] {
                let client = try await RawConnection.open(port: setup.port)
                try await client.send(
                    "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(setup.port)\r\nHost: localhost:\(setup.port)\r\n"
                        + "X-CSRF: 1\r\n\r\n")
                let head = try await eventually(until: { $0.contains("\r\n\r\n") && $0.contains("}") }) {
                    client.received.head
                }
                await client.reset()
                #expect(head.hasPrefix("HTTP/1.1 400"), "\(target): \(head)")
                #expect(head.contains("urn:bff:problem:bad-request"), "\(target): \(head)")
            }
        }
    }
}
