import BFFCore
import BFFDevIdentityProvider
import Testing

/// The planner with a signed-in caller: DPoP-bound tokens, `oidc.dpop: required`, step-up.
extension APICallPlannerTests {
    func signedIn(
        _ sessions: SessionManager, tokenType: String = "Bearer", dpop: DPoPKey? = nil, acr: String? = nil,
        authTime: UnixTime? = nil
    ) async throws -> (String, String) {
        var session = Session(
            issuer: "https://idp", subject: "alice", idpSessionID: "sid", logoutID: "sid", claimsJSON: Array("{}".utf8),
            tokens: TokenSet(
                accessToken: "user-token", accessTokenExpiresAt: time.now + 3600, tokenType: tokenType,
                refreshToken: "rt"),
            createdAt: time.now, renewedAt: time.now)
        session.dpopKey = dpop
        session.authenticationContext = acr
        session.authTime = authTime
        let cookies = try await sessions.create(session, replacing: nil, cookies: CookieHeader(bytes: []))
        return ("Cookie", cookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; "))
    }

    @Test func aBoundSessionSendsTheDPoPSchemeAndAProofForThisRequest() async throws {
        let (planner, sessions) = try planner()
        let key = DPoPKey.generate()
        let cookie = try await signedIn(sessions, tokenType: "DPoP", dpop: key)
        let planned = try #require(
            plan(planner.plan(request("/api/orders/7?q=1", method: "PATCH", [("X-CSRF", "1"), cookie]))))
        #expect(planned.gatewayFields.contains { $0.name == "Authorization" && $0.value == "DPoP user-token" })
        let proof = try #require(planned.gatewayFields.first { $0.name == "DPoP" }?.value)
        let verdict = DevDPoPVerifier().verify(
            proof, method: "PATCH", url: "http://orders.internal:8080/v1/7", accessToken: "user-token", now: time.now)
        #expect(verdict == .success(key.thumbprint))
        // The same session's key with a Bearer answer (an IdP that did not bind): bearer, no proof.
        let (other, otherSessions) = try self.planner()
        let bearer = try await signedIn(otherSessions, tokenType: "Bearer", dpop: key)
        let unbound = try #require(plan(other.plan(request("/api/orders/7", [("X-CSRF", "1"), bearer]))))
        #expect(unbound.gatewayFields.contains { $0.value == "Bearer user-token" })
        #expect(!unbound.gatewayFields.contains { $0.name == "DPoP" })
    }

    /// `oidc.dpop: required`: an unbound session never sends its token; the user signs in again.
    @Test func requiredDPoPRefusesAnUnboundSession() async throws {
        let (planner, sessions) = try planner(requireDPoP: true)
        let cookie = try await signedIn(sessions, tokenType: "Bearer")
        let decision = planner.plan(request("/api/orders/7", [("X-CSRF", "1"), cookie]))
        guard case .suspend(let work) = decision else { throw Failure("an unbound token went out at once") }
        #expect(refusal(await work.resume()) == "session-expired")
        let bound = try await signedIn(sessions, tokenType: "DPoP", dpop: DPoPKey.generate())
        #expect(plan(planner.plan(request("/api/orders/7", [("X-CSRF", "1"), bound]))) != nil)
    }

    @Test func stepUpRoutesRefuseAWeakerOrOlderSession() async throws {
        let (planner, sessions) = try planner()
        let password = try await signedIn(sessions, acr: "pwd", authTime: time.now - 10)
        let refused = planner.plan(request("/api/admin/x", [("X-CSRF", "1"), password]))
        guard case .refuse(let problem) = refused else { throw Failure("not refused") }
        #expect(problem.problem.type == "urn:bff:problem:step-up-required")
        #expect(problem.problem.acrValues == ["mfa"] && problem.problem.maxAge == nil)
        #expect(problem.problem.json().contains(#""acrValues":"mfa""#))
        let mfa = try await signedIn(sessions, acr: "mfa", authTime: time.now - 400)
        #expect(plan(planner.plan(request("/api/admin/x", [("X-CSRF", "1"), mfa]))) != nil)
        guard case .refuse(let old) = planner.plan(request("/api/recent/x", [("X-CSRF", "1"), mfa])) else {
            throw Failure("an old authentication passed maxAuthAge")
        }
        #expect(old.problem.maxAge == 300 && old.problem.acrValues == nil)
        let unknownAge = try await signedIn(sessions, acr: "mfa", authTime: nil)
        #expect(
            refusal(planner.plan(request("/api/recent/x", [("X-CSRF", "1"), unknownAge]))) == "step-up-required",
            "no auth_time: fail closed")
        // An absurd auth_time neither crashes nor passes (the login stores only plausible ones).
        let absurd = try await signedIn(sessions, acr: "mfa", authTime: .min)
        #expect(refusal(planner.plan(request("/api/recent/x", [("X-CSRF", "1"), absurd]))) == "step-up-required")
        #expect(StepUp.plausibleAuthTime(.max, now: time.now, skew: 60) == nil)
        #expect(StepUp.plausibleAuthTime(-1, now: time.now, skew: 60) == nil)
        #expect(StepUp.plausibleAuthTime(time.now + 60, now: time.now, skew: 60) == time.now + 60)
        #expect(!StepUp.isRecent(.min, maxAge: 300, now: time.now, skew: 60))
        #expect(StepUp.parseMaxAge("100000001") == nil && StepUp.parseMaxAge("100000000") == 100_000_000)
        let fresh = try await signedIn(sessions, acr: "pwd", authTime: time.now - 299)
        #expect(plan(planner.plan(request("/api/recent/x", [("X-CSRF", "1"), fresh]))) != nil)
    }
}

@Test func exchangeKeysNeverCollide() {
    let a = TokenExchange(audience: "orders\u{1F}orders.read", scopes: [])
    let b = TokenExchange(audience: "orders", scopes: ["orders.read\u{1F}"])
    let c = TokenExchange(audience: "orders", scopes: ["orders.read"])
    #expect(Set([a.sessionKey, b.sessionKey, c.sessionKey]).count == 3)
    #expect(WebURL(c.sessionKey) == nil, "never taken for a resource URI")
}

/// Library mode: an app's `TokenRetriever` supplies a route's token.
@Suite("App token retrievers")
struct TokenRetrieverTests {
    struct Fixed: TokenRetriever {
        let answer: String?
        let fails: Bool
        func token(for route: APIRouteConfiguration, session: Session?) async throws -> String? {
            if fails { throw Failure("retriever down") }
            return answer.map { $0 + (session == nil ? "-anonymous" : "-" + session!.subject) }  // justified: checked
        }
    }

    final class Source: APITokenSource {
        let freshness = TokenFreshness(refreshBefore: 60)
        let retrievers: [String: any TokenRetriever]
        init(_ retrievers: [String: any TokenRetriever]) { self.retrievers = retrievers }
        func userToken(for loaded: inout LoadedSession, cookies: CookieHeader, route: APIRouteConfiguration) async
            -> UserTokenOutcome
        { .token("rule-token", cookies: []) }
        func cachedClientToken(scopes: [String]?, resource: String?) -> String? { "rule-client" }
        func clientToken(scopes: [String]?, resource: String?) async throws -> String { "rule-client" }
        func retriever(for route: APIRouteConfiguration) -> (any TokenRetriever)? { retrievers[route.path] }
    }

    func planner(_ retriever: Fixed) throws -> APICallPlanner {
        let sessions = SessionManager(
            configuration: SessionConfiguration(store: .memory),
            sealer: Sealer(keyRing: try KeyRing(keys: [.init(id: "k", secret: Array(repeating: 1, count: 32))])),
            store: MemorySessionStore(), revocations: RevocationList(retention: 86400))
        return APICallPlanner(
            routes: [
                APIRouteConfiguration(path: "/api/custom", upstream: "http://custom.internal/", token: .none),
                APIRouteConfiguration(path: "/api/mine", upstream: "http://mine.internal/", token: .user),
            ], sessions: sessions, tokens: Source(["/api/custom": retriever, "/api/mine": retriever]),
            antiForgery: AntiForgeryPolicy(configuration: .init(), publicOrigin: "https://app.example"),
            headerPolicy: HeaderPolicy(antiForgeryHeader: "X-CSRF", bffCookiePrefixes: ["__Host-bff-session"]),
            trustedProxies: [], publicOrigin: "https://app.example", logger: .init(label: "test"))
    }

    func request(_ target: String) -> APICallRequest {
        APICallRequest(
            method: "GET", target: target, fields: [.init(name: "X-CSRF", value: "1")], remoteAddress: "10.0.0.1",
            isUpgrade: false)
    }

    func resumed(_ decision: APICallDecision) async throws -> APICallDecision {
        guard case .suspend(let work) = decision else { throw Failure("the retriever route did not suspend") }
        return await work.resume()
    }

    @Test func theRetrieversTokenGoesUpInsteadOfTheRoutesRule() async throws {
        let planner = try planner(Fixed(answer: "app", fails: false))
        guard case .forward(let plan) = try await resumed(planner.plan(request("/api/custom/x"))) else {
            throw Failure("not forwarded")
        }
        #expect(plan.gatewayFields.contains { $0.name == "Authorization" && $0.value == "Bearer app-anonymous" })
    }

    @Test func aUserRouteStillRefusesAnonymousCallersAndAFailingRetrieverIs503() async throws {
        let planner = try planner(Fixed(answer: "app", fails: false))
        guard case .refuse(let refusal) = try await resumed(planner.plan(request("/api/mine/x"))) else {
            throw Failure("not refused")
        }
        #expect(refusal.problem == .unauthenticated)
        let failing = try self.planner(Fixed(answer: nil, fails: true))
        guard case .refuse(let down) = try await resumed(failing.plan(request("/api/custom/x"))) else {
            throw Failure("not refused")
        }
        #expect(down.problem == .idpUnavailable)
    }
}
