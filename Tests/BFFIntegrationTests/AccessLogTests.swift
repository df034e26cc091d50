import BFFCore
import BFFTesting
import Foundation
import Logging
import Testing

@testable import BFFGateway

/// `logging.access`: one line per request on every path, with the route (never the request path),
/// status, upstream status, duration and a session hash — and never a secret.
@Suite("Access log")
struct AccessLogTests {
    let harness = RemoteAPITests()

    func accessLines(_ log: LogRecorder) -> [LogRecorder.Line] {
        log.all.filter { $0.metadata["bff.log"] == "access" }
    }

    @Test(arguments: [true, false])
    func everyRequestIsOneLineWithoutSecrets(eventLoop: Bool) async throws {
        let log = LogRecorder()
        try await harness.withProxy(fastPath: eventLoop, logger: log.logger, accessLog: true) { env, browser, _ in
            try await env.login(browser)
            let diagnostics = try await browser.get(env.origin + "/bff/diagnostics", headers: env.csrf)
            let accessToken = try #require(TestEnvironment.extract(#""accessToken":""#, from: diagnostics.body))
            let cookies = WebSocketTests.cookieHeader(browser)
            let before = accessLines(log).count
            #expect(try await browser.get(env.origin + "/api/echo/items/7?q=hidden", headers: env.csrf).status == 200)
            #expect(try await browser.get(env.origin + "/api/echo/x").status == 401)  // no anti-forgery header
            #expect(try await browser.get(env.origin + "/bff/user", headers: env.csrf).status == 200)
            let lines = try await eventually(until: { $0.count >= before + 3 }) { accessLines(log) }
            let three = Array(lines[before...])
            #expect(three.count == 3)
            #expect(three.map(\.message) == ["request", "request", "request"])
            #expect(three.map { $0.metadata["bff.route"] } == ["/api/echo", "/api/echo", "/bff/user"])
            #expect(three.map { $0.metadata["http.status"] } == ["200", "401", "200"])
            #expect(three.map { $0.metadata["bff.upstream_status"] } == ["200", nil, nil])
            #expect(three.allSatisfy { $0.metadata["http.method"] == "GET" && $0.level == .info })
            #expect(three.allSatisfy { Double($0.metadata["bff.duration_ms"] ?? "") != nil })
            // The forwarded call ran on a session: a 12-digit hash tells it apart, the id is not there.
            let tag = try #require(three[0].metadata["bff.session"])
            #expect(tag.count == 12 && tag.allSatisfy(\.isHexDigit))
            // A second session gets another tag.
            let other = TestBrowser()
            try await env.login(other)
            #expect(try await other.get(env.origin + "/api/echo/y", headers: env.csrf).status == 200)
            try await other.shutdown()
            let last = try await eventually(until: { $0.count >= before + 4 }) { accessLines(log) }
            #expect(last[before + 3].metadata["bff.session"] != tag)
            // Nothing secret and no request path or query in any line.
            let text = log.all.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
            let cookieValues = cookies.split(separator: ";").compactMap {
                $0.split(separator: "=", maxSplits: 1).last.map(String.init)
            }
            for secret in [accessToken, "items/7", "q=hidden"] + cookieValues {
                #expect(!text.contains(secret), "a log line contains \(secret.prefix(10))…")
            }
        }
    }

    @Test func offByDefault() async throws {
        let log = LogRecorder()
        try await harness.withProxy(logger: log.logger) {
            (env: TestEnvironment, browser: TestBrowser, _: Int) async throws in
            #expect(try await browser.get(env.origin + "/api/public/a", headers: env.csrf).status == 200)
            #expect(try await browser.get(env.origin + "/bff/user", headers: env.csrf).status == 401)
            #expect(accessLines(log).isEmpty)
        }
    }

    @Test func jsonLinesAreValidJSONWhateverTheText() throws {
        let hostile = "quote \" backslash \\ newline \n tab \t nul \u{0} del \u{7f} ls \u{2028} é 😀"
        let line = JSONLogHandler.line([("message", hostile), ("bff.reason", "a\r\nb")])
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false, "one line")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["message"] == hostile)
        #expect(object["bff.reason"] == "a\r\nb")
    }

    /// A call is counted, logged and traced when its response has ended, not at its head: a
    /// streamed body's time and bytes are in its duration and byte count, and a response cut short
    /// (an upstream stalling mid-body, a client leaving) says so — on both pipelines.
    @Test(arguments: [true, false])
    func durationsAndBytesEndWithTheBody(eventLoop: Bool) async throws {
        let log = LogRecorder()
        let calls = APICallLog()
        try await harness.withProxy(
            fastPath: eventLoop, apiCalls: calls, logger: log.logger, accessLog: true,
            configure: { settings in
                if let misc = settings.apis.first(where: { $0.path == "/api/misc" }) {
                    settings.apis.append(
                        APIRouteConfiguration(
                            path: "/api/stalling", upstream: misc.upstream, token: .none, timeout: .seconds(2)))
                }
            }
        ) { env, browser, _ in
            // 1. A body streamed over 800 ms: 4000 bytes, at least 800 ms, complete.
            let drip = try await browser.get(env.origin + "/api/bulk/drip/800?m=drip", headers: env.csrf)
            #expect(drip.status == 200 && drip.body.utf8.count == 4000)
            let dripped = try #require(calls.events(for: "m=drip").first)
            #expect(dripped.pipeline == (eventLoop ? .eventLoop : .router))
            #expect(dripped.responseBytes == 4000)
            #expect(dripped.complete)
            #expect(dripped.duration >= .milliseconds(790), "\(dripped.duration)")
            #expect((dripped.upstreamDuration ?? .zero) >= .milliseconds(790))
            let line = try #require(accessLines(log).last { $0.metadata["bff.route"] == "/api/bulk" })
            #expect(line.metadata["http.response_bytes"] == "4000")
            #expect((Double(line.metadata["bff.duration_ms"] ?? "") ?? 0) >= 790)
            #expect(line.metadata["bff.incomplete"] == nil)

            // 2. An upstream stalling after 1000 bytes: cut off at the route's timeout, reported
            // with the bytes written and as incomplete.
            let client = try await RawConnection.open(port: try FaultTests().port(env))
            try await client.send("GET /api/stalling/stall/1000?m=cut HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n")
            try await client.channel.closeFuture.get()
            let cut = try await eventually(until: { !$0.isEmpty }) { calls.events(for: "m=cut") }
            #expect(cut.count == 1)
            #expect(cut.first?.status == 200)
            #expect(cut.first?.complete == false)
            #expect(cut.first?.responseBytes == 1000)
            #expect((cut.first?.duration ?? .zero) >= .milliseconds(1900))
            let cutLine = try await eventually(until: { $0 != nil }) {
                accessLines(log).last { $0.metadata["bff.route"] == "/api/stalling" }
            }
            #expect(cutLine?.metadata["bff.incomplete"] == "true")

            // 3. A client gone before the head (reset while the upstream takes 600 ms): 499,
            // nothing written, on either pipeline.
            let gone = try await RawConnection.open(port: try FaultTests().port(env))
            try await gone.send("GET /api/bulk/slow/600?m=gone HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n")
            try await Task.sleep(for: .milliseconds(100))
            await gone.reset()
            let left = try await eventually(attempts: 400, until: { !$0.isEmpty }) { calls.events(for: "m=gone") }
            #expect(left.count == 1)
            #expect(left.first?.status == 499, "\(String(describing: left.first))")
            #expect(left.first?.complete == false)
            #expect(left.first?.responseBytes == 0)
        }
    }

    @Test func loggingKeysAreReadAndChecked() throws {
        let base = "oidc: {issuer: https://idp.example, clientId: c, clientSecret: s}\n"
        let good = GatewayConfigurationLoader.load(
            yaml: base + "logging: {level: debug, format: json, access: true}\n", environment: [:])
        let settings = try good.get().logging
        #expect(settings == .init(level: .debug, format: .json, access: true))
        guard
            case .failure(let list) = GatewayConfigurationLoader.load(
                yaml: base + "logging: {level: loud, format: xml}\n", environment: [:])
        else {
            Issue.record("an unknown level and format are refused")
            return
        }
        #expect(
            list.problems.map(\.path).filter { $0.hasPrefix("logging") }.sorted() == [
                "logging.format", "logging.level",
            ])
        // The environment overrides the file, as for every key.
        let fromEnvironment = try GatewayConfigurationLoader.load(
            yaml: base, environment: ["BFF_LOGGING_ACCESS": "true"]
        ).get()
        #expect(fromEnvironment.logging.access)
    }
}
