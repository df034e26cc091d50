import BFFCore
import BFFTesting
import Foundation
import Testing

@testable import BFFGateway

/// RFC 8693 per route (`token: exchange`): the user's token is exchanged for one aimed at the
/// route's API, once per session and parameters while it is fresh, and dropped with the session.
@Suite("Token exchange")
struct TokenExchangeTests {
    static let grant = "urn:ietf:params:oauth:grant-type:token-exchange"

    static func withExchange(
        audience: String = "orders", _ body: @Sendable (TestEnvironment, TestBrowser) async throws -> Void
    ) async throws {
        let echoPort = try await TestServers.freePort()
        try await TestEnvironment.run(
            extraServices: [EchoUpstream.makeApplication(port: echoPort, logger: TestEnvironment.quietLogger)],
            extraPorts: [echoPort],
            configure: { configuration in
                var route = APIRouteConfiguration(
                    path: "/api/orders", upstream: "http://127.0.0.1:\(echoPort)/echo/orders", token: .exchange)
                route.exchange = TokenExchange(audience: audience, scopes: ["orders.read"])
                configuration.apis.append(route)
            }
        ) { env, browser in try await body(env, browser) }
    }

    static func claims(_ authorization: String) throws -> [String: JSONValue] {
        let jws = try #require(CompactJWS(authorization.replacing("Bearer ", with: "")))
        return try JSONDecoder().decode([String: JSONValue].self, from: Data(jws.payloadJSON))
    }

    @Test func theUpstreamGetsATokenForItsAudienceExchangedOnce() async throws {
        try await Self.withExchange { env, browser in
            #expect(try await browser.get(env.origin + "/api/orders/1", headers: env.csrf).status == 401)
            try await env.login(browser)
            var seen: Set<String> = []
            for round in 0..<3 {
                let page = try await browser.get(env.origin + "/api/orders/\(round)", headers: env.csrf)
                #expect(page.status == 200, "\(page.body)")
                seen.insert(try #require(try EchoedRequest(json: page.body).values("authorization").first))
            }
            #expect(seen.count == 1, "the exchanged token is kept while fresh")
            let claims = try Self.claims(try #require(seen.first))
            #expect(claims["aud"] == "orders")
            #expect(claims["scope"] == "orders.read")
            #expect(claims["sub"] == "alice-7f3b")
            #expect(claims["act"]?.objectValue?["sub"] == "bff-demo", "RFC 8693 §4.1: the actor is the gateway")
            #expect(await env.idp.statistics().tokenRequests[Self.grant] == 1)
        }
    }

    @Test func fiftyConcurrentCallsCauseOneExchange() async throws {
        try await Self.withExchange { env, browser in
            try await env.login(browser)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await browser.get(env.origin + "/api/orders/\(index)", headers: env.csrf).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
            #expect(await env.idp.statistics().tokenRequests[Self.grant] == 1)
        }
    }

    @Test func logoutDropsTheExchangedToken() async throws {
        try await Self.withExchange { env, browser in
            try await env.login(browser)
            let before = try await browser.get(env.origin + "/api/orders/a", headers: env.csrf)
            let first = try #require(try EchoedRequest(json: before.body).values("authorization").first)
            #expect(try await browser.get(try await env.logoutURL(browser)).status == 302)
            #expect(try await browser.get(env.origin + "/api/orders/b", headers: env.csrf).status == 401)
            let second = TestBrowser()
            defer { _ = second }
            try await env.login(second)
            let after = try await second.get(env.origin + "/api/orders/c", headers: env.csrf)
            try await second.shutdown()
            let renewed = try #require(try EchoedRequest(json: after.body).values("authorization").first)
            #expect(first != renewed)
            #expect(await env.idp.statistics().tokenRequests[Self.grant] == 2, "a new session exchanges anew")
        }
    }

    @Test func anExchangeTheIdPRefusesIsForbiddenAndKeepsTheSession() async throws {
        try await Self.withExchange(audience: "unknown-api") { env, browser in
            try await env.login(browser)
            let page = try await browser.get(env.origin + "/api/orders/1", headers: env.csrf)
            #expect(page.status == 403)
            #expect(page.body.contains("urn:bff:problem:forbidden"))
            #expect(try await env.user(browser).status == 200)
        }
    }

    @Test func validationNeedsItsParametersAndAServerSideSession() {
        var configuration = BFFConfiguration()
        var missing = APIRouteConfiguration(path: "/api/a", upstream: "http://127.0.0.1:1/", token: .exchange)
        var stray = APIRouteConfiguration(path: "/api/b", upstream: "http://127.0.0.1:1/", token: .user)
        stray.exchange = TokenExchange(audience: "x")
        var empty = APIRouteConfiguration(path: "/api/c", upstream: "http://127.0.0.1:1/", token: .exchange)
        empty.exchange = TokenExchange()
        missing.scopes = nil
        configuration.apis = [missing, stray, empty]
        configuration.session.store = .cookie
        let problems = configuration.validate().map(\.description)
        #expect(problems.contains { $0.contains("apis[0].exchange: is required with token: exchange") })
        #expect(problems.contains { $0.contains("apis[1].exchange: only applies to token: exchange") })
        #expect(problems.contains { $0.contains("apis[2].exchange: needs an audience or a resource") })
        #expect(
            problems.contains { $0.contains("apis[0].token: an exchanged token is kept in the server-side session") })
    }
}
