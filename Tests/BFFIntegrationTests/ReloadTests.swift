import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFForwarder
import BFFHummingbird
import BFFOIDC
import BFFTesting
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import BFFGateway

/// Reloading the configuration file into a running gateway (SPEC §11.3), under a constant load of
/// API calls that must all succeed: frontends added and removed, an upstream changed, a key
/// rotated; broken files, a removed active key and restart-only changes refused with the old
/// configuration still serving.
@Suite("Configuration reload")
struct ReloadTests {
    struct Ports: Sendable {
        let gateway: Int
        let idp: Int
        let echoOne: Int
        let echoTwo: Int
        let admin: Int
        /// The data directory (the file sits in it).
        let directory: String
    }

    static let k1 = "{id: k1, secret: \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\"}"
    static let k2 = "{id: k2, secret: \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI\"}"

    /// The file: `shop` on 127.0.0.1 with `/api/x` to `upstream`, optionally `admin` on localhost.
    static func yaml(
        _ ports: Ports, keys: [String] = [k1], upstream: String? = nil, admin: Bool = false, listen: Int? = nil
    ) -> String {
        var text = """
            server: {listen: "127.0.0.1:\(listen ?? ports.gateway)", environment: development, publicOrigin: "http://127.0.0.1:\(ports.gateway)", dataDirectory: "\(ports.directory)"}
            admin: {listen: "127.0.0.1:\(ports.admin)"}
            keys: [\(keys.joined(separator: ", "))]
            session: {store: memory}
            oidc: {issuer: "http://127.0.0.1:\(ports.idp)", clientId: shop, clientSecret: reload-secret}
            frontends:
              - name: shop
                match: {host: "127.0.0.1:\(ports.gateway)"}
                publicOrigin: "http://127.0.0.1:\(ports.gateway)"
                apis:
                  - {path: /api/x, upstream: "\(upstream ?? "http://127.0.0.1:\(ports.echoOne)/echo/one")", token: user}

            """
        if admin {
            text += """
                  - name: admin
                    match: {host: "localhost:\(ports.gateway)"}
                    publicOrigin: "http://localhost:\(ports.gateway)"
                    oidc: {clientId: admin}
                    apis:
                      - {path: /api/x, upstream: "http://127.0.0.1:\(ports.echoTwo)/echo/admin", token: user}

                """
        }
        return text
    }

    struct Running: Sendable {
        let ports: Ports
        let file: String
        let gateway: Gateway
        let reloader: ConfigurationReloader
        let log: LogRecorder
        var shop: String { "http://127.0.0.1:\(ports.gateway)" }
        var admin: String { "http://localhost:\(ports.gateway)" }

        func write(_ text: String) throws {
            // As editors do: a new file moved over the old one.
            let temporary = file + ".tmp"
            try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
            _ = rename(temporary, file)
        }
    }

    static func run(watch: Duration? = nil, _ body: @Sendable (Running) async throws -> Void) async throws {
        var free: [Int] = []
        for _ in 0..<5 { free.append(try await TestServers.freePort()) }
        let directory = FileManager.default.temporaryDirectory.path + "/bff-reload-\(UUID().uuidString)"
        let ports = Ports(
            gateway: free[0], idp: free[1], echoOne: free[2], echoTwo: free[3], admin: free[4], directory: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/bff.yaml"
        let text = yaml(ports)
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        var configuration = try GatewayConfigurationLoader.load(yaml: text, environment: [:]).get()
        configuration.source = ConfigurationSource(path: file, contents: Data(text.utf8), environment: [:])
        let origins = ["http://127.0.0.1:\(ports.gateway)", "http://localhost:\(ports.gateway)"]
        let idp = try DevIdentityProvider(
            configuration: .init(
                issuer: "http://127.0.0.1:\(ports.idp)",
                clients: zip(["shop", "admin"], origins).map { id, origin in
                    DevClient(
                        clientID: id, clientSecret: "reload-secret", redirectURIs: [origin + "/signin-oidc"],
                        postLogoutRedirectURIs: [origin + "/signout-callback-oidc"])
                }))
        let http = AsyncHTTPClientTransport.makeClient()
        let forwarder = NIOUpstream()
        let log = LogRecorder()
        let gateway = try Gateway.build(
            configuration: configuration, keyRing: try KeyRing(keys: configuration.bff.keys),
            http: AsyncHTTPClientTransport(client: http), upstream: forwarder, logger: TestEnvironment.quietLogger)
        let reloader = ConfigurationReloader(
            path: file, configuration: configuration, keyRing: gateway.keyRing, builder: gateway.builder,
            frontends: gateway.frontends, logger: log.logger, environment: { [:] })
        let quiet = TestEnvironment.quietLogger
        var services: [any Service] = [
            gateway.service, forwarder, idp.makeApplication(host: "127.0.0.1", port: ports.idp, logger: quiet),
            EchoUpstream.makeApplication(port: ports.echoOne, logger: quiet),
            EchoUpstream.makeApplication(port: ports.echoTwo, logger: quiet),
        ]
        services += gateway.maintenance(reloader: reloader, watch: watch)
        if let admin = gateway.admin { services.append(admin) }
        let running = Running(ports: ports, file: file, gateway: gateway, reloader: reloader, log: log)
        do {
            try await TestServers.withRunning(
                services, ports: [ports.gateway, ports.idp, ports.echoOne, ports.echoTwo, ports.admin]
            ) { try await body(running) }
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    static let csrf = [("X-CSRF", "1")]

    /// Logs in at `base` through the dev IdP's form.
    static func login(_ browser: TestBrowser, base: String, idp: Int) async throws {
        let start = try await browser.get(base + "/bff/login")
        try #require(start.status == 302, "login answered \(start.status): \(start.body)")
        let form = try await browser.get(try #require(start.location))
        let page = form.status == 200 ? form : try await browser.follow(form)
        let requestID = try #require(TestEnvironment.extract(#"name="request_id" value=""#, from: page.body))
        let submitted = try await browser.postForm(
            "http://127.0.0.1:\(idp)/authorize",
            [("request_id", requestID), ("username", "alice"), ("password", "alice")])
        try #require(submitted.status == 302)
        #expect(try await browser.get(try #require(submitted.location)).status == 302)
    }

    /// Which upstream path answered `url` (the echo's view of the request).
    static func upstreamPath(_ browser: TestBrowser, _ url: String) async throws -> String {
        let page = try await browser.get(url, headers: csrf)
        try #require(page.status == 200, "\(url): \(page.status) \(page.body)")
        return try #require(TestEnvironment.extract(#""path":""#, from: page.body)).replacingOccurrences(
            of: "\\/", with: "/")
    }

    /// A constant load of API calls on one session; every answer must be 200. Paced (a call every
    /// 10 ms per caller): enough to catch a swap that drops calls, not enough to starve the tests
    /// that run beside it on a 2-core runner.
    final class Load: Sendable {
        let statuses = Mutex<[Int: Int]>([:])
        let errors = Mutex<[String]>([])
        let stop = Mutex(false)
        var completed: Int { statuses.withLock { $0.values.reduce(0, +) } }

        func run(_ browser: TestBrowser, url: String) async {
            while !stop.withLock({ $0 }) {
                do {
                    let page = try await browser.get(url, headers: ReloadTests.csrf)
                    statuses.withLock { $0[page.status, default: 0] += 1 }
                    try? await Task.sleep(for: .milliseconds(10))
                } catch {
                    errors.withLock { $0.append("\(error)") }
                    try? await Task.sleep(for: .milliseconds(10))
                }
            }
        }
    }

    @Test func reloadsUnderLoadWithoutAFailedRequest() async throws {
        try await Self.run { env in
            let browser = TestBrowser()
            try await Self.login(browser, base: env.shop, idp: env.ports.idp)
            let initial = try await Self.upstreamPath(browser, env.shop + "/api/x/a")
            #expect(initial == "/echo/one/a", "\(initial)")
            let load = Load()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 { group.addTask { await load.run(browser, url: env.shop + "/api/x/load") } }
                defer { load.stop.withLock { $0 = true } }  // however the steps below end

                // 1. Add a frontend and change shop's upstream.
                let echoTwo = "http://127.0.0.1:\(env.ports.echoTwo)/echo/two"
                try env.write(Self.yaml(env.ports, upstream: echoTwo, admin: true))
                let first = await env.reloader.reload(reason: "test")
                let completedAtFirstReload = load.completed
                #expect(first == .applied(added: ["admin"], changed: ["shop"], removed: []), "\(first)")
                #expect(
                    try await Self.upstreamPath(browser, env.shop + "/api/x/a") == "/echo/two/a", "the new upstream")
                let adminBrowser = TestBrowser()
                try await Self.login(adminBrowser, base: env.admin, idp: env.ports.idp)
                #expect(try await Self.upstreamPath(adminBrowser, env.admin + "/api/x/b") == "/echo/admin/b")

                // 2. Rotate the key: k2 seals from now on, k1 still opens today's cookies.
                try env.write(Self.yaml(env.ports, keys: [Self.k2, Self.k1], upstream: echoTwo, admin: true))
                #expect(
                    await env.reloader.reload(reason: "test")
                        == .applied(added: [], changed: ["shop", "admin"], removed: []))
                #expect(try await browser.get(env.shop + "/bff/user", headers: Self.csrf).status == 200)
                #expect(env.gateway.bff.sealer.keyRing.keyIDs == ["k2", "k1"])

                // 3. A broken file: refused, logged with its fix; the running configuration serves on.
                try env.write(Self.yaml(env.ports, keys: [Self.k2, Self.k1], upstream: echoTwo) + "  - name: [\n")
                guard case .refused(let problems) = await env.reloader.reload(reason: "test") else {
                    Issue.record("a broken file was applied")
                    return
                }
                #expect(problems.map(\.path) == ["(file)"])
                #expect(env.log.all.contains { $0.level == .error && $0.metadata["bff.key"] == "(file)" })
                #expect(try await Self.upstreamPath(adminBrowser, env.admin + "/api/x/c") == "/echo/admin/c")

                // 4. Removing the active key, and a change only a restart can make: refused.
                try env.write(Self.yaml(env.ports, keys: [Self.k1], upstream: echoTwo, admin: true))
                #expect(Self.refused(await env.reloader.reload(reason: "test")) == ["keys"])
                try env.write(
                    Self.yaml(env.ports, keys: [Self.k2, Self.k1], upstream: echoTwo, admin: true, listen: 1))
                #expect(Self.refused(await env.reloader.reload(reason: "test")) == ["server.listen"])
                #expect(env.gateway.bff.sealer.keyRing.keyIDs == ["k2", "k1"])

                // 5. Remove a frontend: its requests belong to no frontend, its session to nobody.
                try env.write(Self.yaml(env.ports, keys: [Self.k2, Self.k1], upstream: echoTwo))
                // (shop changes too: admin's cookie is no longer one it must keep from its upstreams.)
                let removal = await env.reloader.reload(reason: "test")
                let completedAtLastReload = load.completed
                #expect(removal == .applied(added: [], changed: ["shop"], removed: ["admin"]), "\(removal)")
                let gone = try await adminBrowser.get(env.admin + "/bff/user", headers: Self.csrf)
                #expect(gone.status == 404)
                #expect(gone.body.contains("urn:bff:problem:no-frontend"))
                #expect(try await Self.upstreamPath(browser, env.shop + "/api/x/d") == "/echo/two/d")

                // The file unchanged since: nothing to do.
                #expect(await env.reloader.reload(reason: "test") == .unchanged)
                load.stop.withLock { $0 = true }
                try await group.waitForAll()
                #expect(completedAtLastReload > completedAtFirstReload, "the load ran between the reloads")
            }
            let statuses = load.statuses.withLock { $0 }
            #expect(load.errors.withLock { $0 }.isEmpty, "\(load.errors.withLock { $0.prefix(3) })")
            #expect(statuses.keys.sorted() == [200], "every call under reloads succeeded: \(statuses)")
            #expect(env.reloader.reloads == 3)
        }
    }

    /// The keys a refused reload named; nil when it was not refused.
    static func refused(_ outcome: ConfigurationReloader.Outcome) -> [String]? {
        guard case .refused(let problems) = outcome else { return nil }
        return problems.map(\.path)
    }

    /// Changes a running process cannot make, each refused by name: a new CA file (loaded at
    /// start), `config.watch`; and a stale pid file naming another program is not signalled.
    @Test func caFilesAndWatchingNeedARestart() async throws {
        let pki = try TLSUpstreamTests.PKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        try await Self.run { env in
            let https = Self.yaml(env.ports, upstream: "https://localhost:1/echo")
            try env.write(
                https.replacingOccurrences(of: "token: user}", with: "token: user, caFile: \"\(pki.caFile)\"}"))
            #expect(Self.refused(await env.reloader.reload(reason: "test")) == ["frontends[0].apis[0].caFile"])
            try env.write(Self.yaml(env.ports) + "config: {watch: true}\n")
            #expect(Self.refused(await env.reloader.reload(reason: "test")) == ["config.watch"])
            // A pid file with a live pid that is not a `bff serve` (this test process).
            let pidFile = PIDFile(directory: env.ports.directory)
            try pidFile.write()
            #expect(pidFile.read() == nil)
        }
    }

    /// A gateway started with `frontends:` keeps it: one frontend without the list (unpartitioned
    /// sessions, metrics without a `frontend` label) is a restart away, not a reload.
    @Test func switchingToOneUnnamedFrontendNeedsARestart() async throws {
        try await Self.run { env in
            let single = """
                server: {listen: "127.0.0.1:\(env.ports.gateway)", environment: development, publicOrigin: "http://127.0.0.1:\(env.ports.gateway)", dataDirectory: "\(env.ports.directory)"}
                admin: {listen: "127.0.0.1:\(env.ports.admin)"}
                keys: [\(Self.k1)]
                session: {store: memory}
                oidc: {issuer: "http://127.0.0.1:\(env.ports.idp)", clientId: shop, clientSecret: reload-secret}
                apis:
                  - {path: /api/x, upstream: "http://127.0.0.1:\(env.ports.echoOne)/echo/one", token: user}

                """
            try env.write(single)
            let outcome = await env.reloader.reload(reason: "test")
            #expect(Self.refused(outcome) == ["frontends"], "\(outcome)")
        }
    }

    /// The upstream pool gauges follow reloads: a removed frontend's series go instead of
    /// staying frozen at their last values.
    @Test func poolGaugesOfARemovedFrontendGo() async throws {
        try await Self.run { env in
            let browser = TestBrowser()
            let metricsURL = "http://127.0.0.1:\(env.ports.admin)/metrics"
            try env.write(Self.yaml(env.ports, admin: true))
            #expect(Self.refused(await env.reloader.reload(reason: "test")) == nil)
            let before = try await browser.get(metricsURL).body
            #expect(before.contains(#"bff_upstream_connections{frontend="admin""#), "\(before)")
            try env.write(Self.yaml(env.ports))
            #expect(Self.refused(await env.reloader.reload(reason: "test")) == nil)
            let after = try await browser.get(metricsURL).body
            #expect(!after.contains(#"frontend="admin""#), "\(after)")
            #expect(after.contains(#"bff_upstream_connections{frontend="shop""#))
        }
    }

    /// `config.watch` reads a file only once it stopped changing: a file still being written (a
    /// change at every look) triggers nothing; once it is still for one look, one reload.
    @Test func theWatchWaitsForTheFileToStopChanging() async throws {
        let file = FileManager.default.temporaryDirectory.path + "/bff-watch-\(UUID().uuidString).yaml"
        try Data("a".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let triggers = Mutex(0)
        let watcher = Task {
            await FrontendServices.watchFile(file, every: .milliseconds(300)) { triggers.withLock { $0 += 1 } }
        }
        defer { watcher.cancel() }
        // Written to for 1.5 s, a little more every 20 ms (many writes between two looks).
        var text = "a"
        for _ in 0..<75 {
            text += "b"
            try Data(text.utf8).write(to: URL(fileURLWithPath: file))
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(triggers.withLock { $0 } == 0, "a file that changes at every look is not read")
        let settled = try await eventually(attempts: 100, until: { $0 > 0 }) { triggers.withLock { $0 } }
        #expect(settled == 1)
        try await Task.sleep(for: .milliseconds(900))
        #expect(triggers.withLock { $0 } == 1, "one reload for one change")
    }

    /// The listener was built without WebSocket upgrades: a reload cannot add the first
    /// WebSocket route (it would never be upgraded); refused with "restart".
    @Test func theFirstWebSocketRouteNeedsARestart() async throws {
        try await Self.run { env in
            try env.write(
                Self.yaml(env.ports).replacingOccurrences(of: "token: user}", with: "token: user, websocket: true}"))
            let outcome = await env.reloader.reload(reason: "test")
            #expect(Self.refused(outcome) == ["apis"], "\(outcome)")
        }
    }

    @Test func aWatchedFileIsReloadedWhenItChangesAndConfigShowsIt() async throws {
        try await Self.run(watch: .milliseconds(100)) { env in
            let admin = TestBrowser()
            let before = try await admin.get("http://127.0.0.1:\(env.ports.admin)/config")
            #expect(before.body.contains(#""frontends":["shop"]"#))
            #expect(try await admin.get(env.admin + "/bff/user", headers: Self.csrf).status == 404)
            try env.write(Self.yaml(env.ports, admin: true))
            let after = try await eventually(until: { $0.body.contains(#""frontends":["shop","admin"]"#) }) {
                try await admin.get("http://127.0.0.1:\(env.ports.admin)/config")
            }
            #expect(after.body.contains(#""frontends":["shop","admin"]"#), "\(after.body)")
            let fingerprint = { (body: String) in TestEnvironment.extract(#""fingerprint":""#, from: body) }
            #expect(fingerprint(after.body) != fingerprint(before.body))
            #expect(try await admin.get(env.admin + "/bff/user", headers: Self.csrf).status == 401, "admin serves now")
        }
    }
}
