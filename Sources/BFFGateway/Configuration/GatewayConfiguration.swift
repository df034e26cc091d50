import BFFCore
import BFFSessionStorePostgres
import Foundation
import Logging
import Yams

/// Everything `bff serve` needs: the BFF configuration plus gateway-only settings.
struct GatewayConfiguration: Sendable {
    var bff: BFFConfiguration
    /// Where a generated key is persisted when `keys:` is absent.
    var dataDirectory: String = "./bff-data"
    /// The SQLite session database (`session.sqlite.path`); nil = `<dataDirectory>/sessions.sqlite`.
    var sqlitePath: String?
    /// The PostgreSQL session database (`session.postgres.url`), when `session.store` is postgres.
    var postgres: PostgresSessionStore.Configuration?
    /// `logging:` — level, line format and the access log.
    var logging = LoggingSettings()
    /// `telemetry:` — OpenTelemetry traces.
    var telemetry = TelemetrySettings()
    /// `frontends:` — when present, the frontends the gateway serves (each with its whole
    /// configuration); empty when `bff` is the only one.
    var frontends: [FrontendSettings] = []
    /// `config.watch`: reload when the file changes (polled every 2 s); SIGHUP always reloads.
    var watch = false
    /// The file this was read from (`GET /config` on the admin listener); nil when built in code.
    var source: ConfigurationSource?

    struct TelemetrySettings: Sendable, Equatable {
        /// `telemetry.otlp.endpoint`: the collector's OTLP/HTTP base URL (e.g.
        /// `http://127.0.0.1:4318`; spans go to `/v1/traces` under it).
        var endpoint: String?
        /// The process's `OTEL_*` variables (``GatewayTracing`` reads the standard ones: endpoint,
        /// headers, timeout, batching, service name, resource, sampler, `OTEL_SDK_DISABLED`).
        var otelEnvironment: [String: String] = [:]
        /// Whether traces are exported at all: an endpoint in the file or the environment, and
        /// not `OTEL_SDK_DISABLED=true`.
        var enabled: Bool {
            otelEnvironment["OTEL_SDK_DISABLED"]?.lowercased() != "true"
                && (endpoint != nil
                    || ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"].contains {
                        otelEnvironment[$0]?.isEmpty == false
                    })
        }
        /// `telemetry.sampleRatio`: the share of new traces recorded (a caller's sampling decision,
        /// from a trusted proxy, is followed).
        var sampleRatio = 1.0
        /// How often finished spans are sent (not a configuration key; `OTEL_BSP_SCHEDULE_DELAY`
        /// overrides it; tests shorten it).
        var exportInterval: Duration = .seconds(5)
    }

    struct LoggingSettings: Sendable, Equatable {
        enum Format: String, Sendable { case text, json }
        /// `logging.level` (`BFF_LOG_LEVEL` when absent); nil = info.
        var level: Logger.Level?
        /// `logging.format`: `text` (default) or `json` (one JSON object per line).
        var format: Format = .text
        /// `logging.access`: one line per request (off by default).
        var access = false
    }

    /// Every frontend's whole BFF configuration (`bff` alone without `frontends:`).
    var effectiveFrontends: [BFFConfiguration] { frontends.isEmpty ? [bff] : frontends.map(\.bff) }

    /// The SQLite path in effect.
    var effectiveSQLitePath: String { sqlitePath ?? dataDirectory + "/sessions.sqlite" }
    /// Cookie mode's revocation records (without PostgreSQL): `<dataDirectory>/revocations.sqlite`.
    var revocationsPath: String { dataDirectory + "/revocations.sqlite" }
}

enum GatewayConfigurationLoader {
    /// Parses YAML text with environment overrides; returns the configuration or every problem.
    static func load(yaml: String, environment: [String: String]) -> Result<GatewayConfiguration, ProblemList> {
        let tree: Any?
        do {
            tree = try Yams.load(yaml: yaml)
        } catch {
            return .failure(
                ProblemList([
                    .init(
                        path: "(file)", message: "is not valid YAML: \(yamlProblem(error))",
                        fix: "check indentation and quoting")
                ]))
        }
        let root: [String: Any]
        if tree == nil {
            root = [:]
        } else if let dictionary = tree as? [String: Any] {
            root = dictionary
        } else {
            return .failure(
                ProblemList([
                    .init(
                        path: "(file)", message: "top level must be a mapping",
                        fix: "start with keys such as server: and oidc:")
                ]))
        }
        let reader = ConfigReader(root: root, environment: environment)
        var routeIndices: [Int] = []
        var configuration = BFFConfiguration()
        var gateway = GatewayConfiguration(bff: configuration)

        let top = reader.top
        configuration.server.read(top.section(of: ServerConfiguration.Key.self))
        if let value = reader.string(ServerConfiguration.Key.dataDirectory.path) { gateway.dataDirectory = value }

        // keys
        typealias KeyEntry = KeyRing.Key.ConfigKey
        if let list = reader.raw(BFFConfiguration.Key.keys.rawValue) {
            if let entries = list as? [Any] {
                for (index, entry) in entries.enumerated() {
                    let path = KeyEntry.section + "[\(index)]"
                    guard let dictionary = entry as? [String: Any],
                        let id = dictionary[KeyEntry.id.rawValue] as? String,
                        let rawSecret = dictionary[KeyEntry.secret.rawValue] as? String
                    else {
                        reader.problem(
                            path, "needs id and secret", "write - {id: k1, secret: \"base64 of 32 bytes\"}")
                        continue
                    }
                    for key in dictionary.keys where !KeyEntry.names.contains(key) {
                        reader.problem(path + ".\(key)", "is not a known key", "remove it")
                    }
                    let secretPath = path + "." + KeyEntry.secret.rawValue
                    guard let secret = reader.secret(secretPath, rawSecret) else { continue }
                    guard let bytes = decodeKey(secret) else {
                        reader.problem(secretPath, "is not base64", "generate one with `bff keys generate`")
                        continue
                    }
                    configuration.keys.append(KeyRing.Key(id: id, secret: bytes))
                }
            } else {
                reader.problem(BFFConfiguration.Key.keys.rawValue, "must be a list", "write - {id: k1, secret: ...}")
            }
        }

        configuration.oidc.read(top.section(of: OIDCConfiguration.Key.self))

        configuration.session.read(top.section(of: SessionConfiguration.Key.self))
        let sqlitePath = SessionConfiguration.Key.sqlite.path + ".path"
        let postgresURLPath = SessionConfiguration.Key.postgres.path + ".url"
        if let value = reader.string(sqlitePath) { gateway.sqlitePath = value }
        let postgresURL = reader.string(postgresURLPath)
        if configuration.session.store == .postgres || postgresURL != nil {
            // SPEC default: the URL comes from BFF_POSTGRES_URL (it holds a password: keep it out of files).
            let reference = postgresURL ?? "env:BFF_POSTGRES_URL"
            if let url = reader.secret(postgresURLPath, reference) {
                do {
                    gateway.postgres = try PostgresSessionStore.Configuration(url: url)
                } catch {
                    reader.problem(
                        postgresURLPath, "\(error)",
                        "use postgres://user:password@host:port/database[?sslmode=verify-full&schema=name&pool=20]")
                }
            }
        }
        configuration.tokens.read(top.section(of: TokenConfiguration.Key.self))
        configuration.logout.read(top.section(of: LogoutConfiguration.Key.self))
        configuration.antiforgery.read(top.section(of: AntiForgeryConfiguration.Key.self))
        configuration.user.read(top.section(of: UserConfiguration.Key.self))

        configuration.staticFiles.read(top.section(of: StaticFilesConfiguration.Key.self))
        configuration.admin.read(top.section(of: AdminConfiguration.Key.self))
        configuration.diagnostics.read(top.section(of: DiagnosticsConfiguration.Key.self))
        gateway.logging.read(top.section("logging"))
        gateway.telemetry.read(top.section("telemetry"), environment: environment)
        if let value = top.string(BFFConfiguration.Key.managementPrefix) { configuration.managementPrefix = value }
        if let apis = top.raw(BFFConfiguration.Key.apis) {
            if let list = apis as? [Any] {
                for (index, item) in list.enumerated() {
                    if let route = parseRoute(
                        item, path: APIRouteConfiguration.Key.section + "[\(index)]", reader: reader)
                    {
                        configuration.apis.append(route)
                        routeIndices.append(index)
                    }
                }
            } else {
                top.problem(
                    BFFConfiguration.Key.apis, "must be a list",
                    "write - {path: /api/x, upstream: http://127.0.0.1:5090}")
            }
        }
        gateway.frontends = FrontendSettings.readAll(top, defaults: configuration)
        if let value = reader.bool("config.watch") { gateway.watch = value }

        for path in reader.unknownKeys() {
            reader.problem(path, "is not a known configuration key", "check the spelling against docs/configuration.md")
        }
        var problems = reader.problems
        // Validation counts only the routes that parsed; report the positions in the file.
        func positioned(_ problem: ConfigurationProblem) -> ConfigurationProblem {
            var problem = problem
            for (parsed, original) in routeIndices.enumerated() where parsed != original {
                if problem.path.hasPrefix("apis[\(parsed)]") {
                    problem.path = "apis[\(original)]" + problem.path.dropFirst("apis[\(parsed)]".count)
                    break
                }
            }
            return problem
        }
        if gateway.frontends.isEmpty {
            problems += configuration.validate().map(positioned)
        } else {
            // Each frontend's effective configuration; a problem of a shared section once.
            var seen = Set<String>()
            for (index, frontend) in gateway.frontends.enumerated() {
                for problem in frontend.bff.validate() {
                    var problem = problem
                    if FrontendSettings.keys.contains(where: { problem.path.hasPrefix($0) })
                        || problem.path.hasPrefix("managementPrefix")
                    {
                        problem.path = "frontends[\(index)]." + problem.path
                    }
                    if seen.insert(problem.description).inserted { problems.append(problem) }
                }
            }
        }
        // A value the reader already refused (an unusable key, say) is not also "required".
        let refusedPaths = Set(reader.problems.map(\.path))
        problems = problems.enumerated().filter { index, problem in
            index < reader.problems.count || !refusedPaths.contains(problem.path)
        }.map(\.element)
        gateway.bff = configuration
        if !problems.isEmpty { return .failure(ProblemList(problems)) }
        return .success(gateway)
    }

    /// A YAML parser error as problems may show it: its position and kind only. Yams quotes the
    /// offending source line, which may hold a key or a client secret (and problems are logged).
    static func yamlProblem(_ error: any Error) -> String {
        let first = String(describing: error).split(separator: "\n", omittingEmptySubsequences: true).first ?? ""
        return first.hasSuffix(":") ? String(first.dropLast()) : String(first)
    }

    /// `host:port` or `[v6]:port`.
    static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    /// Standard or URL-safe base64, padded or not.
    static func decodeKey(_ text: String) -> [UInt8]? {
        let normalized = text.trimmingCharacters(in: .whitespacesAndNewlines).utf8.map {
            $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0
        }
        return Base64URL.decode(normalized)
    }
}

/// Several configuration problems.
struct ProblemList: Error, CustomStringConvertible {
    let problems: [ConfigurationProblem]
    init(_ problems: [ConfigurationProblem]) { self.problems = problems }
    var description: String { problems.map(\.description).joined(separator: "\n") }
}
