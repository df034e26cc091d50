import BFFCore
import Testing

/// The planner alone: no sockets, no framework. Each refusal is asserted by its problem type; each
/// forward by the URL, headers and framing it plans.
@Suite("API call planner")
struct APICallPlannerTests {
    let time = ManualTimeSource(now: 1_800_000_000)

    /// Counts what the planner asks for; tokens are handed out without I/O delay.
    final class Tokens: APITokenSource {
        let freshness = TokenFreshness(refreshBefore: 60)
        let cached: String?
        init(cached: String?) { self.cached = cached }
        func userToken(for loaded: inout LoadedSession, cookies: CookieHeader, route: APIRouteConfiguration) async
            -> UserTokenOutcome
        { .token("refreshed-user-token", cookies: []) }
        func cachedClientToken(scopes: [String]?, resource: String?) -> String? { cached }
        func clientToken(scopes: [String]?, resource: String?) async throws -> String { "fetched-client-token" }
    }

    func planner(
        cachedClientToken: String? = "cached-client-token", trusted: [String] = [], requireDPoP: Bool = false
    ) throws -> (
        APICallPlanner, SessionManager
    ) {
        var configuration = SessionConfiguration(store: .memory)
        configuration.idleTimeout = .seconds(3600)
        let sessions = SessionManager(
            configuration: configuration,
            sealer: Sealer(keyRing: try KeyRing(keys: [.init(id: "k", secret: Array(repeating: 1, count: 32))])),
            store: MemorySessionStore(), revocations: RevocationList(retention: 86400), time: time)
        let origin = "https://app.example"
        let planner = APICallPlanner(
            routes: [
                APIRouteConfiguration(path: "/api/orders/", upstream: "http://orders.internal:8080/v1/", token: .user),
                APIRouteConfiguration(path: "/api/public", upstream: "http://public.internal", token: .none),
                APIRouteConfiguration(path: "/api/svc", upstream: "http://svc.internal/x", token: .client),
                APIRouteConfiguration(path: "/api/live", upstream: "http://live.internal/ws", websocket: true),
                {
                    var route = APIRouteConfiguration(path: "/api/admin", upstream: "http://admin.internal/")
                    route.requireAcr = ["mfa"]
                    return route
                }(),
                {
                    var route = APIRouteConfiguration(path: "/api/recent", upstream: "http://recent.internal/")
                    route.maxAuthAge = .seconds(300)
                    return route
                }(),
            ], sessions: sessions, tokens: Tokens(cached: cachedClientToken),
            antiForgery: AntiForgeryPolicy(configuration: .init(), publicOrigin: origin),
            headerPolicy: HeaderPolicy(antiForgeryHeader: "X-CSRF", bffCookiePrefixes: ["__Host-bff-session"]),
            trustedProxies: trusted.compactMap(IPAddressRange.init), publicOrigin: origin,
            logger: .init(label: "test"), requireDPoP: requireDPoP)
        return (planner, sessions)
    }

    func request(
        _ target: String, method: String = "GET", _ headers: [(String, String)] = [("X-CSRF", "1")],
        upgrade: Bool = false, from address: String = "10.1.2.3"
    ) -> APICallRequest {
        APICallRequest(
            method: method, target: target, fields: headers.map { .init(name: $0.0, value: $0.1) },
            remoteAddress: address, isUpgrade: upgrade)
    }

    func refusal(_ decision: APICallDecision) -> String? {
        if case .refuse(let refusal) = decision { return refusal.problem.type.replacing("urn:bff:problem:", with: "") }
        return nil
    }

    func plan(_ decision: APICallDecision) -> APICallPlan? {
        if case .forward(let plan) = decision { return plan }
        return nil
    }

    @Test func pathsOutsideTheRoutesPassAndUnsafePathsAreRefusedEverywhere() throws {
        let (planner, _) = try planner()
        guard case .pass = planner.plan(request("/bff/user")) else { throw Failure("not passed") }
        guard case .pass = planner.plan(request("/api/publicity")) else { throw Failure("prefix is not a segment") }
        guard case .pass = planner.plan(request("*", method: "OPTIONS")) else { throw Failure("asterisk form") }
        #expect(refusal(planner.plan(request("/bff/%2e%2e/user"))) == "invalid-path", "unsafe even off the routes")
        #expect(refusal(planner.plan(request("/api/public/a#frag"))) == "invalid-path")
    }

    @Test func theUpstreamURLKeepsTheRemainderAndTheQuery() throws {
        let (planner, _) = try planner()
        let exact = try #require(plan(planner.plan(request("/api/public"))))
        #expect(exact.url == "http://public.internal/")
        let nested = try #require(plan(planner.plan(request("/api/public/a/b?x=1&y=%20"))))
        #expect(nested.url == "http://public.internal/a/b?x=1&y=%20")
        #expect(nested.upstream.hostHeader == "public.internal" && nested.upstream.port == 80)
        let svc = try #require(plan(planner.plan(request("/api/svc/list"))))
        #expect(svc.pathAndQuery == "/x/list")
    }

    @Test func refusalsNameTheirReason() throws {
        let (planner, _) = try planner()
        #expect(refusal(planner.plan(request("/api/public/a", []))) == "antiforgery")
        #expect(refusal(planner.plan(request("/api/public/a", [("X-CSRF", "1"), ("X-CSRF", "1")]))) == "antiforgery")
        #expect(
            refusal(planner.plan(request("/api/public/a", [("X-CSRF", "1"), ("Sec-Fetch-Site", "cross-site")])))
                == "antiforgery")
        #expect(
            refusal(
                planner.plan(
                    request("/api/public/a", method: "POST", [("X-CSRF", "1"), ("Transfer-Encoding", "gzip")])))
                == "unsupported-transfer-coding")
        #expect(
            refusal(planner.plan(request("/api/public/a", [("X-CSRF", "1"), ("X-Note", "a\u{1}b")]))) == "bad-request")
        #expect(
            refusal(
                planner.plan(request("/api/public/a", method: "POST", [("X-CSRF", "1"), ("Content-Length", "-1")])))
                == "bad-request")
    }

    /// Spaces around a value are not part of it (RFC 9110 §5.5): every adapter agrees.
    @Test func antiForgeryValuesAreComparedWithoutSurroundingSpaces() throws {
        let (planner, _) = try planner()
        #expect(plan(planner.plan(request("/api/public/a", [("X-CSRF", " 1 ")]))) != nil)
        #expect(plan(planner.plan(request("/api/public/a", [("X-CSRF", "\t1")]))) != nil)
        #expect(refusal(planner.plan(request("/api/public/a", [("X-CSRF", "1 1")]))) == "antiforgery")
    }

    @Test func aUserRouteWithoutASessionIsRefusedAfterSuspending() async throws {
        let (planner, _) = try planner()
        guard case .suspend(let work) = planner.plan(request("/api/orders/1")) else { throw Failure("not suspended") }
        #expect(refusal(await work.resume()) == "unauthenticated")
    }

    @Test func aClientRouteUsesTheCachedTokenAtOnceOrSuspendsToFetchOne() async throws {
        let (cachedPlanner, _) = try planner()
        let cached = try #require(plan(cachedPlanner.plan(request("/api/svc/a"))))
        #expect(
            cached.gatewayFields.contains { $0.name == "Authorization" && $0.value == "Bearer cached-client-token" })
        let (planner, _) = try self.planner(cachedClientToken: nil)
        guard case .suspend(let work) = planner.plan(request("/api/svc/a")) else { throw Failure("not suspended") }
        let fetched = try #require(plan(await work.resume()))
        #expect(fetched.gatewayFields.contains { $0.value == "Bearer fetched-client-token" })
    }

    @Test func headersFollowThePolicyAndForwardingIsTrustedOnlyFromTrustedProxies() throws {
        let hostile = [
            ("X-CSRF", "1"), ("Cookie", "a=b"), ("Authorization", "Bearer stolen"), ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Host", "evil"), ("X_Forwarded_For", "6.6.6.6"), ("Connection", "x-drop"), ("X-Drop", "1"),
            ("Accept", "application/json"),
        ]
        let (planner, _) = try planner()
        let untrusted = try #require(plan(planner.plan(request("/api/public/a", hostile))))
        #expect(untrusted.forwardedFields.map(\.name) == ["Accept"])
        #expect(untrusted.gatewayFields.map(\.name) == ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"])
        #expect(untrusted.gatewayFields[0].value == "10.1.2.3", "the peer only")
        #expect(untrusted.gatewayFields[2].value == "app.example")
        let (trustedPlanner, _) = try self.planner(trusted: ["10.0.0.0/8"])
        let trusted = try #require(plan(trustedPlanner.plan(request("/api/public/a", hostile))))
        #expect(trusted.gatewayFields[0].value == "6.6.6.6, 10.1.2.3", "a trusted proxy's chain is kept")
    }

    @Test func bodiesAreFramedAsAnnounced() throws {
        let (planner, _) = try planner()
        let length = try #require(
            plan(planner.plan(request("/api/public/a", method: "POST", [("X-CSRF", "1"), ("Content-Length", "600")]))))
        #expect(length.body == .length(600))
        let chunked = try #require(
            plan(
                planner.plan(
                    request("/api/public/a", method: "PUT", [("X-CSRF", "1"), ("Transfer-Encoding", "chunked")]))))
        #expect(chunked.body == .chunked)
        let expect = try #require(
            plan(
                planner.plan(
                    request(
                        "/api/public/a", method: "PUT",
                        [("X-CSRF", "1"), ("Content-Length", "2"), ("Expect", "100-continue")]))))
        #expect(expect.expectsContinue && !expect.forwardedFields.contains { $0.lowercasedName == "expect" })
        #expect(try #require(plan(planner.plan(request("/api/public/a")))).body == .none)
    }

    @Test func webSocketRoutesCheckTheOriginAndSay426WithoutTheUpgrade() throws {
        let (planner, _) = try planner()
        let origin = ("Origin", "https://app.example")
        #expect(refusal(planner.plan(request("/api/live", [], upgrade: true))) == "websocket-origin")
        #expect(
            refusal(planner.plan(request("/api/live", [("Origin", "https://evil.example")], upgrade: true)))
                == "websocket-origin")
        #expect(refusal(planner.plan(request("/api/live", [origin, origin], upgrade: true))) == "websocket-origin")
        // A handshake must say `Connection: upgrade` and carry no body (the review's crash: the
        // HTTP parser reads on, and what follows would be taken for WebSocket frames).
        #expect(refusal(planner.plan(request("/api/live", [origin], upgrade: true))) == "bad-request")
        let upgrade = ("Connection", "keep-alive, Upgrade")
        #expect(
            refusal(planner.plan(request("/api/live", [origin, upgrade, ("Content-Length", "5")], upgrade: true)))
                == "bad-request")
        #expect(
            refusal(
                planner.plan(request("/api/live", [origin, upgrade, ("Transfer-Encoding", "chunked")], upgrade: true)))
                == "bad-request")
        // token: user and no session: refused after the (suspended) credentials step.
        guard
            case .suspend = planner.plan(
                request("/api/live", [origin, upgrade, ("Content-Length", "0")], upgrade: true))
        else {
            throw Failure("the handshake's credentials were not looked up")
        }
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
