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
