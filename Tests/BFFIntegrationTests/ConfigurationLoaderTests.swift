import BFFCore
import BFFTesting
import Crypto
import Foundation
import Testing

@testable import BFFGateway

@Suite("Gateway configuration: YAML, environment, validation")
struct ConfigurationLoaderTests {
    static let validYAML = """
        server:
          listen: "127.0.0.1:5080"
          publicOrigin: "http://localhost:5080"
        keys:
          - id: k1
            secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"
        oidc:
          issuer: "https://idp.example.com"
          clientId: bff
          clientSecret: "env:TEST_SECRET"
          scopes: [openid, profile]
          authorizeParameters: {audience: "https://api.example.com"}
        session:
          store: memory
          idleTimeout: 30m
        user:
          anonymousResponse: "null"
        """

    func load(_ yaml: String, env: [String: String] = ["TEST_SECRET": "s3cret"]) -> Result<
        GatewayConfiguration, ProblemList
    > {
        GatewayConfigurationLoader.load(yaml: yaml, environment: env)
    }

    func problems(_ yaml: String, env: [String: String] = ["TEST_SECRET": "s3cret"]) -> [ConfigurationProblem] {
        if case .failure(let list) = load(yaml, env: env) { return list.problems }
        return []
    }

    /// `GET /config` on the admin listener: the file's SHA-256, load time and the names of the
    /// overriding variables; never a value from the file or the environment.
    @Test func theAdminListenerShowsWhichConfigurationRunsWithoutItsSecrets() async throws {
        let yaml = Self.validYAML + "# clientSecret: plain-file-secret\n"
        let source = ConfigurationSource(
            path: "/etc/bff/bff.yaml", contents: Array(yaml.utf8),
            environment: ["BFF_OIDC_CLIENT_SECRET": "env-secret-value", "HOME": "/root"],
            loadedAt: Date(timeIntervalSince1970: 1_800_000_000))
        let expectedHash = HMAC<SHA256>.authenticationCode(
            for: Array(yaml.utf8), using: ConfigurationSource.processKey
        ).map { String(format: "%02x", $0) }.joined()
        #expect(source.fingerprint == expectedHash)
        // Keyed: not the file's plain SHA-256 (a short inline secret could be guessed offline).
        let plain = SHA256.hash(data: Array(yaml.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(source.fingerprint != plain)
        #expect(
            ConfigurationSource(path: "x", contents: Array((yaml + " ").utf8), environment: [:]).fingerprint
                != source.fingerprint, "any change of the file changes it")
        try await TestEnvironment.run(configurationSource: source, configure: { _ in }) { env, browser in
            let page = try await browser.get("http://127.0.0.1:\(env.adminPort)/config")
            #expect(page.status == 200)
            #expect(page.header("content-type") == "application/json")
            #expect(page.header("cache-control") == "no-store")
            #expect(
                page.body
                    == #"{"file":"/etc/bff/bff.yaml","fingerprint":"\#(expectedHash)","loadedAt":"2027-01-15T08:00:00.000Z","environmentOverrides":["BFF_OIDC_CLIENT_SECRET"],"frontends":[]}"#
            )
            for secret in ["plain-file-secret", "env-secret-value", "HOME"] { #expect(!page.body.contains(secret)) }
        }
        // A gateway configured in code has no file to show.
        try await TestEnvironment.run(configure: { _ in }) { env, browser in
            let page = try await browser.get("http://127.0.0.1:\(env.adminPort)/config")
            #expect(page.status == 404)
        }
    }

    @Test func validConfiguration() throws {
        let configuration = try load(Self.validYAML).get().bff
        #expect(configuration.oidc.clientSecret == "s3cret")
        #expect(configuration.oidc.scopes == ["openid", "profile"])
        #expect(configuration.oidc.authorizeParameters == ["audience": "https://api.example.com"])
        #expect(configuration.session.idleTimeout == .seconds(1800))
        #expect(configuration.user.anonymousAsNull)
        #expect(configuration.keys.first?.secret.count == 32)
    }

    @Test func environmentOverridesYAML() throws {
        let configuration = try load(
            Self.validYAML, env: ["TEST_SECRET": "x", "BFF_OIDC_CLIENT_ID": "other", "BFF_SESSION_IDLE_TIMEOUT": "2h"]
        ).get().bff
        #expect(configuration.oidc.clientID == "other")
        #expect(configuration.session.idleTimeout == .seconds(7200))
    }

    /// A file that does not parse: the problem gives the position, never the offending line (it
    /// may hold a key or a client secret, and reload problems are logged).
    @Test func aYAMLErrorDoesNotQuoteTheFile() {
        let found = problems(
            """
            keys:
              - id: k1
                secret: AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI: oops
            """)
        #expect(found.map(\.path) == ["(file)"])
        #expect(found.first?.message.contains("3:") == true, "\(found)")
        #expect(!found.description.contains("AgICAg"), "\(found)")
    }

    @Test func everyExampleConfigurationLoads() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Examples/configs").standardized.path
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 5)
        let environment = [
            "BFF_KEY_K1": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", "BFF_OIDC_CLIENT_SECRET": "s",
            "BFF_POSTGRES_URL": "postgres://bff:pw@db.internal/bff",
            "BFF_KEY_2026_11": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", "BFF_ADMIN_CLIENT_SECRET": "a",
        ]
        for file in files {
            let yaml = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            switch load(yaml, env: environment) {
            case .failure(let problems): Issue.record("\(file): \(problems)")
            case .success(let configuration) where file == "multi-frontend.yaml":
                // Three frontends, two IdPs; docs moved under its prefix.
                #expect(configuration.frontends.map(\.name) == ["shop", "admin", "docs"])
                #expect(Set(configuration.frontends.map(\.bff.oidc.issuer)).count == 2)
                #expect(configuration.frontends.last?.bff.apis.map(\.path) == ["/docs/api/search"])
                #expect(configuration.frontends.last?.bff.oidc.clientSecret == "s", "inherited")
            case .success: break
            }
        }
    }

    @Test func postgresStoreNeedsAValidURL() throws {
        let yaml = Self.validYAML.replacingOccurrences(of: "store: memory", with: "store: postgres")
        // The SPEC default: the URL comes from BFF_POSTGRES_URL.
        let missing = problems(yaml)
        #expect(missing.contains { $0.path == "session.postgres.url" && $0.message.contains("BFF_POSTGRES_URL") })
        let configured = try load(
            yaml,
            env: ["TEST_SECRET": "s", "BFF_POSTGRES_URL": "postgres://bff:pw@db.internal:5433/sessions?schema=gw"]
        ).get()
        #expect(configured.postgres?.host == "db.internal")
        #expect(configured.postgres?.port == 5433)
        #expect(configured.postgres?.schema == "gw")
        #expect(configured.postgres?.tls == .verifyFull)
        for bad in ["mysql://x@h/d", "postgres://u@h/d?sslmode=prefer", "postgres://u@h/d?schema=a-b"] {
            let found = problems(yaml, env: ["TEST_SECRET": "s", "BFF_POSTGRES_URL": bad])
            #expect(found.contains { $0.path == "session.postgres.url" }, "\(bad)")
            #expect(!found.contains { $0.message.contains("pw") })
        }
    }

    @Test func environmentNames() {
        #expect(ConfigReader.environmentName("oidc.clientSecret") == "BFF_OIDC_CLIENT_SECRET")
        #expect(ConfigReader.environmentName("server.publicOrigin") == "BFF_SERVER_PUBLIC_ORIGIN")
        #expect(ConfigReader.environmentName("session.sqlite.path") == "BFF_SESSION_SQLITE_PATH")
        #expect(ConfigReader.environmentName("oidc.usePAR") == "BFF_OIDC_USE_PAR")
    }

    @Test func userResourceTokensNeedAServerSideStore() {
        let yaml = { (store: String) in
            """
            server:
              listen: "127.0.0.1:8080"
            keys:
              - id: k1
                secret: "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"
            oidc:
              issuer: "http://127.0.0.1:5000"
              clientId: bff
              clientSecret: s
            session:
              store: \(store)
            apis:
              - path: /api/orders
                upstream: "http://127.0.0.1:5090/orders"
                token: user
                resource: "https://orders.example"
              - path: /api/reports
                upstream: "http://127.0.0.1:5090/reports"
                token: client
                resource: "https://reports.example"
            """
        }
        let cookie = problems(yaml("cookie"), env: [:])
        #expect(cookie.map(\.path) == ["apis[0].resource"], "\(cookie)")
        #expect(cookie.first?.fix.contains("server-side session store") == true)
        #expect(problems(yaml("memory"), env: [:]).isEmpty)
    }

    @Test func everyProblemIsReportedAtOnce() {
        let found = problems(
            """
            server:
              listen: "0.0.0.0:8080"
              idleTimeout: "soon"
            keys:
              - id: k1
                secret: "AQID"
            oidc:
              issuer: "http://idp.example.com"
              clientId: bff
              clientSecret: "env:MISSING_SECRET"
              colour: blue
            session:
              cookieName: "__Host-bff-session"
              cookieDomain: example.com
              cookiePath: /app
              sameSite: none
            """, env: [:])
        let paths = Set(found.map(\.path))
        #expect(paths.contains("server.publicOrigin"), "non-loopback listen without publicOrigin")
        #expect(paths.contains("server.idleTimeout"), "bad duration")
        #expect(paths.contains("keys[0].secret"), "key not 32 bytes")
        #expect(paths.contains("oidc.issuer"), "plain http to a remote IdP")
        #expect(paths.contains("oidc.clientSecret"), "missing secret")
        #expect(paths.contains("oidc.colour"), "unknown key")
        #expect(paths.contains("session.cookieDomain"), "__Host- with Domain")
        #expect(paths.contains("session.cookiePath"), "__Host- with Path")
        #expect(paths.contains("session.sameSite"), "SameSite=None without allowCrossSite")
        #expect(found.allSatisfy { !$0.fix.isEmpty })
        #expect(found.count >= 9)
    }

    @Test func secretsNeverAppearInProblems() {
        let found = problems(
            Self.validYAML.replacingOccurrences(of: "clientId: bff", with: "clientId: \"\""),
            env: ["TEST_SECRET": "very-secret-value"])
        #expect(!found.isEmpty)
        #expect(!found.map(\.description).joined().contains("very-secret-value"))
    }

    @Test func invalidYAML() {
        #expect(problems("server: [unclosed").first?.path == "(file)")
        #expect(problems("- a list").first?.path == "(file)")
    }

    @Test func missingIssuerAndClient() {
        let paths = Set(problems("server:\n  listen: \"127.0.0.1:5080\"\n").map(\.path))
        #expect(paths.isSuperset(of: ["oidc.issuer", "oidc.clientId", "oidc.clientSecret"]))
    }

    @Test func apiRoutesAreRead() throws {
        let yaml =
            Self.validYAML + """

                apis:
                  - path: /api/weather
                    upstream: "http://127.0.0.1:5090/weatherforecast"
                    token: user-or-client
                    scopes: [api.read, api.write]
                    resource: "https://api.example.com"
                    timeout: 5s
                  - path: /api/public
                    upstream: "https://public.example.com"
                    token: none
                """
        let routes = try load(yaml).get().bff.apis
        #expect(routes.count == 2)
        #expect(routes[0].token == .userOrClient)
        #expect(routes[0].scopes == ["api.read", "api.write"])
        #expect(routes[0].resource == "https://api.example.com")
        #expect(routes[0].timeout == .seconds(5))
        #expect(routes[1].token == TokenRequirement.none)
    }

    @Test func badAPIRoutesAreReported() {
        let paths = Set(
            problems(
                Self.validYAML + """

                    apis:
                      - path: api/no-slash
                        upstream: "ftp://x"
                        token: admin
                        colour: red
                      - upstream: "http://127.0.0.1:1"
                      - path: /bff/evil
                        upstream: "http://127.0.0.1:1"
                      - path: /api/ws
                        upstream: "http://127.0.0.1:1"
                        websocket: "yes"
                    """
            ).map(\.path))
        #expect(
            paths.isSuperset(of: [
                "apis[0].path", "apis[0].upstream", "apis[0].token", "apis[0].colour", "apis[1]", "apis[2].path",
                "apis[3].websocket",
            ]))
    }

    @Test(arguments: [("75s", 75), ("10m", 600), ("8h", 28800), ("7d", 604800), ("30", 30)])
    func durations(_ text: String, _ seconds: Int64) {
        #expect(ConfigReader.parseDuration(text) == .seconds(seconds))
    }

    @Test(arguments: ["", "abc", "-5s", "5x", "1.5h", "s"])
    func badDurations(_ text: String) { #expect(ConfigReader.parseDuration(text) == nil) }

    @Test func listenParsing() {
        #expect(GatewayConfigurationLoader.parseListen("127.0.0.1:5080")! == ("127.0.0.1", 5080))
        #expect(GatewayConfigurationLoader.parseListen("[::1]:80")! == ("::1", 80))
        #expect(GatewayConfigurationLoader.parseListen("nohost") == nil)
        #expect(GatewayConfigurationLoader.parseListen(":80") == nil)
        #expect(GatewayConfigurationLoader.parseListen("h:99999") == nil)
    }
}
