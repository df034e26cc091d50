import BFFCore
import BFFHummingbird
import BFFTesting
import Foundation
import Testing

/// `/metrics` on the admin listener after a scripted sequence: exact counter deltas and histogram
/// bucket counts, for both adapters of the API pipeline; labels bounded, no secrets.
@Suite("Prometheus metrics")
struct MetricsTests {
    let harness = RemoteAPITests()

    /// A scrape, parsed: `name{label="value",...}` (labels sorted) → value.
    struct Scrape {
        let text: String
        let samples: [String: Double]

        init(_ text: String) {
            self.text = text
            var samples: [String: Double] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
                else { continue }
                samples[Self.key(String(line[..<space]))] = value
            }
            self.samples = samples
        }

        /// The series name with its labels sorted.
        static func key(_ series: String) -> String {
            guard let open = series.firstIndex(of: "{"), series.hasSuffix("}") else { return series }
            let name = series[..<open]
            let labels = series[series.index(after: open)..<series.index(before: series.endIndex)]
                .split(separator: ",").map(String.init).sorted()
            return name + "{" + labels.joined(separator: ",") + "}"
        }

        subscript(_ series: String) -> Double { samples[Self.key(series)] ?? 0 }
    }

    func scrape(_ env: TestEnvironment, _ browser: TestBrowser) async throws -> Scrape {
        let page = try await browser.get("http://127.0.0.1:\(env.adminPort)/metrics")
        #expect(page.status == 200)
        #expect(page.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return Scrape(page.body)
    }

    @Test(arguments: [true, false])
    func aScriptedSequenceCountsExactly(eventLoop: Bool) async throws {
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await harness.withProxy(clock: clock, fastPath: eventLoop) { env, browser, _ in
            let before = try await scrape(env, browser)
            #expect(before["bff_build_info{version=\"0.2.0\"}"] == 1)

            // Login.
            try await env.login(browser)
            let diagnostics = try await browser.get(env.origin + "/bff/diagnostics", headers: env.csrf)
            let accessToken = try #require(TestEnvironment.extract(#""accessToken":""#, from: diagnostics.body))
            let refreshToken = try #require(TestEnvironment.extract(#""refreshToken":""#, from: diagnostics.body))
            let cookie = WebSocketTests.cookieHeader(browser)

            // (Logins first: the manual clock runs ahead of the IdP later on.)
            // A back-channel logout (the IdP session ends), and a forged one. (New browsers: the
            // IdP's own session cookie would skip its login form.)
            let second = TestBrowser()
            try await env.login(second)
            #expect(try await second.get(env.issuer + "/end_session").status == 200)
            let forged = try await browser.request(
                "POST", env.origin + "/bff/backchannel",
                headers: [("content-type", "application/x-www-form-urlencoded")],
                body: Array("logout_token=not.a.token".utf8), sendCookies: false)
            #expect(forged.status == 400)
            try await second.shutdown()
            // A logout.
            let third = TestBrowser()
            try await env.login(third)
            let logout = try await third.get(try await env.logoutURL(third))
            #expect((300..<400).contains(logout.status))
            try await third.shutdown()

            // API calls with each token type; client tokens: one fetch, then the cache.
            for path in ["/api/echo/items/7?q=secret-query", "/api/public/a", "/api/either/b", "/api/service/c"] {
                #expect(try await browser.get(env.origin + path, headers: env.csrf).status == 200)
            }
            #expect(try await browser.get(env.origin + "/api/service/d", headers: env.csrf).status == 200)
            // A refresh (the token expires within refreshBeforeExpiry).
            clock.advance(by: 241)
            #expect(try await browser.get(env.origin + "/api/echo/e", headers: env.csrf).status == 200)
            // An upstream timeout (route timeout 1 s).
            #expect(try await browser.get(env.origin + "/api/misc/slow/3000", headers: env.csrf).status == 504)
            // A refusal (no anti-forgery header).
            #expect(try await browser.get(env.origin + "/api/echo/f").status == 401)
            // A rejected refresh: the IdP forgets the grant; the session ends.
            let revoked = try await browser.postForm(
                env.issuer + "/revoke",
                [("token", refreshToken), ("client_id", "bff-demo"), ("client_secret", DemoSetupSecret.value)])
            #expect(revoked.status == 200)
            clock.advance(by: 241)
            #expect(try await browser.get(env.origin + "/api/echo/g", headers: env.csrf).status == 401)
            let after = try await scrape(env, browser)
            func delta(_ series: String) -> Double { after[series] - before[series] }
            #expect(delta(#"bff_login_total{outcome="success"}"#) == 3)
            #expect(delta("bff_sessions_started_total") == 3)
            #expect(delta(#"bff_sessions_ended_total{reason="refresh_rejected"}"#) == 1)
            #expect(delta(#"bff_sessions_ended_total{reason="backchannel"}"#) == 1)
            #expect(delta(#"bff_sessions_ended_total{reason="logout"}"#) == 1)
            #expect(delta(#"bff_token_refresh_total{outcome="success"}"#) == 1)
            #expect(delta(#"bff_token_refresh_total{outcome="rejected"}"#) == 1)
            #expect(delta(#"bff_backchannel_logout_total{outcome="success"}"#) == 1)
            #expect(delta(#"bff_backchannel_logout_total{outcome="invalid_token"}"#) == 1)
            #expect(delta(#"bff_client_token_cache_total{result="miss"}"#) == 1)
            #expect(delta(#"bff_client_token_cache_total{result="hit"}"#) == 1)
            // API calls by configured route, method and status (never the request path).
            #expect(delta(#"bff_http_requests_total{method="GET",route="/api/echo",status="200"}"#) == 2)
            #expect(delta(#"bff_http_requests_total{method="GET",route="/api/echo",status="401"}"#) == 2)
            #expect(delta(#"bff_http_requests_total{method="GET",route="/api/service",status="200"}"#) == 2)
            #expect(delta(#"bff_http_requests_total{method="GET",route="/api/misc",status="504"}"#) == 1)
            #expect(delta(#"bff_upstream_errors_total{api="/api/misc",kind="timeout"}"#) == 1)
            // Histograms: the upstream answered /api/echo twice (the refused calls never reached it).
            #expect(delta(#"bff_upstream_request_duration_seconds_count{api="/api/echo"}"#) == 2)
            #expect(delta(#"bff_upstream_request_duration_seconds_bucket{api="/api/echo",le="+Inf"}"#) == 2)
            #expect(delta(#"bff_upstream_request_duration_seconds_count{api="/api/misc"}"#) == 0)
            // The timed-out call took the route's 1 s: above the 0.5 s bucket, in +Inf.
            #expect(delta(#"bff_http_request_duration_seconds_bucket{le="0.5",route="/api/misc"}"#) == 0)
            #expect(delta(#"bff_http_request_duration_seconds_bucket{le="+Inf",route="/api/misc"}"#) == 1)
            // Store operations (the memory store answers lookups at once, unmeasured): three
            // sessions written at login, one ended by the back-channel logout, two removed (the
            // logout, the rejected refresh), none failed. (The refresh's write happens inside the
            // store's exclusive section, which is not timed: it would include the IdP's answer.)
            #expect(delta(#"bff_session_store_duration_seconds_count{operation="insert"}"#) == 3)
            #expect(delta(#"bff_session_store_duration_seconds_count{operation="remove_all"}"#) == 1)
            #expect(delta(#"bff_session_store_duration_seconds_count{operation="remove"}"#) == 2)
            for operation in BFFMetrics.StoreOperation.allCases {
                #expect(delta("bff_session_store_errors_total{operation=\"\(operation.rawValue)\"}") == 0)
            }
            // Requests the router answers are counted by their route pattern.
            #expect(delta(#"bff_http_requests_total{method="GET",route="/bff/user",status="200"}"#) >= 1)
            // Pool gauges, per configured api.
            #expect(after.samples.keys.contains(Scrape.key(#"bff_upstream_connections{api="/api/echo",state="idle"}"#)))
            #expect(after[#"bff_upstream_connections{api="/api/echo",state="leased"}"#] == 0)
            // Every metric the operations guide, the alert rules and the dashboard name exists.
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            for file in [
                "docs/operations.md", "Examples/observability/alerts.yml", "Examples/observability/dashboard.json",
            ] {
                let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
                let names = Set(
                    text.matches(of: /bff_[a-z_]+/).map { String($0.output) }
                        .map { $0.replacing(/_(bucket|count|sum)$/, with: "") })
                #expect(names.count >= 5, "\(file) names metrics")
                for name in names {
                    #expect(
                        after.text.contains("# TYPE \(name) "),
                        "\(file) names \(name), which the gateway does not export")
                }
            }
            // Bounded labels, no secrets.
            for secret in [accessToken, refreshToken, "items/7", "secret-query", DemoSetupSecret.value]
                + cookie.split(separator: ";").compactMap({
                    $0.split(separator: "=", maxSplits: 1).last.map(String.init)
                })
            {
                #expect(!after.text.contains(secret), "the scrape contains \(secret.prefix(12))…")
            }
        }
    }
}
