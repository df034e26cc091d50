import ArgumentParser
import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFHummingbird
import BFFOIDC
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// `bff demo`: development IdP + gateway + sample SPA + sample API, offline, in one process.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run an offline quickstart: dev IdP, gateway, sample SPA and API.")

    @Option(name: .long, help: "Gateway port.")
    var port: Int = 5080

    @Option(name: .long, help: "Development IdP port.")
    var idpPort: Int = 5556

    @Option(name: .long, help: "Access-token lifetime at the dev IdP, in seconds.")
    var accessTokenLifetime: Int64 = 300

    @Option(name: .long, help: "Admin listener port (health and readiness).")
    var adminPort: Int = 9090

    func run() async throws {
        CommandSupport.bootstrapLogging()
        let logger = Logger(label: "bff.demo")
        let setup = try DemoSetup.make(
            port: port, idpPort: idpPort, adminPort: adminPort, accessTokenLifetime: accessTokenLifetime)
        let client = AsyncHTTPClientTransport.makeClient()
        let gateway: Gateway
        do {
            gateway = try Gateway.build(
                configuration: setup.gateway, keyRing: setup.keyRing, http: AsyncHTTPClientTransport(client: client),
                logger: logger, configureRouter: DemoAPI.add)
        } catch {
            try? await client.shutdown()
            throw error
        }
        let idp = try DevIdentityProvider(configuration: setup.idp)
        var services: [any Service] = [
            idp.makeApplication(host: "127.0.0.1", port: idpPort, logger: Logger(label: "bff.dev-idp")),
            gateway.application,
        ]
        if let admin = gateway.admin { services.append(admin) }
        FileHandle.standardOutput.write(
            Data(
                """

                  swift-bff demo is running (offline).

                    Open      http://localhost:\(port)/
                    Sign in   alice / alice   or   bob / bob
                    IdP       \(setup.idp.issuer)  (development identity provider)
                    Health    http://127.0.0.1:\(adminPort)/healthz  /readyz

                  Press Ctrl-C to stop.

                """.utf8))
        do {
            let group = ServiceGroup(
                configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

/// The demo's wiring, shared with the tests.
struct DemoSetup {
    var gateway: GatewayConfiguration
    var idp: DevIdentityProviderConfiguration
    var keyRing: KeyRing
    static let clientSecret = "demo-secret-not-for-production"

    static func make(port: Int, idpPort: Int, adminPort: Int?, accessTokenLifetime: Int64) throws -> DemoSetup {
        let origin = "http://localhost:\(port)"
        let issuer = "http://127.0.0.1:\(idpPort)"
        var bff = BFFConfiguration()
        bff.server.host = "127.0.0.1"
        bff.server.port = port
        bff.server.publicOrigin = origin
        bff.server.environment = "development"
        bff.oidc.issuer = issuer
        bff.oidc.clientID = "bff-demo"
        bff.oidc.clientSecret = clientSecret
        bff.session.store = .memory
        bff.staticFiles.root = demoSPARoot()
        bff.admin.listen = adminPort.map { "127.0.0.1:\($0)" }
        let idp = DevIdentityProviderConfiguration(
            issuer: issuer,
            clients: [
                DevClient(
                    clientID: "bff-demo", clientSecret: clientSecret, redirectURIs: [origin + "/signin-oidc"],
                    postLogoutRedirectURIs: [origin + "/signout-callback-oidc"])
            ], accessTokenLifetime: accessTokenLifetime)
        // The demo's sessions live in memory, so an ephemeral key is enough.
        let keyRing = try KeyRing(keys: [KeyRing.Key(id: "demo", secret: SystemSecureRandom().bytes(32))])
        return DemoSetup(gateway: GatewayConfiguration(bff: bff), idp: idp, keyRing: keyRing)
    }

    /// The sample SPA shipped as a resource of this executable.
    static func demoSPARoot() -> String? {
        Bundle.module.resourcePath.map { $0 + "/DemoSPA" }
    }
}

/// The demo's local API: `GET /api/weatherforecast`, a BFF API endpoint (anti-forgery + session).
enum DemoAPI {
    static func add(to router: Router<BasicBFFRequestContext>, bff: BFF) {
        router.group("api")
            .add(middleware: BFFAPIMiddleware(bff: bff))
            .get("weatherforecast") { _, context in
                let name = context.session?.subject ?? "anonymous"
                let summaries = [
                    "Freezing", "Bracing", "Chilly", "Cool", "Mild", "Warm", "Balmy", "Hot", "Sweltering", "Scorching",
                ]
                let today = Int(SystemTimeSource().now / 86400)
                var items: [String] = []
                for offset in 1...5 {
                    let seed = (today + offset) &* 2_654_435_761
                    let celsius = abs(seed % 55) - 20
                    let summary = summaries[abs(seed / 7) % summaries.count]
                    items.append("{\"dayOffset\":\(offset),\"temperatureC\":\(celsius),\"summary\":\"\(summary)\"}")
                }
                let body = "{\"user\":\(JSONText.quote(name)),\"forecast\":[\(items.joined(separator: ","))]}"
                return BFFResponses.json(body)
            }
    }
}
