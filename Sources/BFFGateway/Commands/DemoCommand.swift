import ArgumentParser
import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFForwarder
import BFFHummingbird
import BFFOIDC
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
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

    @Option(name: .long, help: "Sample API (upstream) port.")
    var apiPort: Int = 5090

    @Option(name: .long, help: "Admin listener port (health and readiness).")
    var adminPort: Int = 9090

    func run() async throws {
        CommandSupport.bootstrapLogging()
        let logger = Logger(label: "bff.demo")
        let setup = try DemoSetup.make(
            port: port, idpPort: idpPort, apiPort: apiPort, adminPort: adminPort,
            accessTokenLifetime: accessTokenLifetime)
        let client = AsyncHTTPClientTransport.makeClient()
        let upstreamClient = AsyncHTTPClientUpstream.makeClient()
        let forwarder = NIOUpstream(tlsFallback: AsyncHTTPClientUpstream(client: upstreamClient))
        do {
            let gateway = try Gateway.build(
                configuration: setup.gateway, keyRing: setup.keyRing, http: AsyncHTTPClientTransport(client: client),
                upstream: forwarder, logger: logger, configureRouter: DemoAPI.add)
            let idp = try DevIdentityProvider(configuration: setup.idp)
            var services: [any Service] =
                [
                    idp.makeApplication(host: "127.0.0.1", port: idpPort, logger: Logger(label: "bff.dev-idp")),
                    SampleAPI.makeApplication(idp: idp, port: apiPort, logger: Logger(label: "bff.sample-api")),
                    gateway.service, forwarder,
                ] + gateway.maintenance
            if let admin = gateway.admin { services.append(admin) }
            FileHandle.standardOutput.write(
                Data(
                    """

                      swift-bff demo is running (offline).

                        Open      http://localhost:\(port)/
                        Sign in   alice / alice   or   bob / bob
                        IdP       \(setup.idp.issuer)  (development identity provider)
                        API       http://127.0.0.1:\(apiPort)/weatherforecast, reached as /api/weatherforecast (token: user)
                        Health    http://127.0.0.1:\(adminPort)/healthz  /readyz

                      Press Ctrl-C to stop.

                    """.utf8))
            try await CommandSupport.run(services, grace: setup.gateway.bff.server.shutdownGrace, logger: logger)
        } catch {
            try? await CommandSupport.shutdown([client, upstreamClient])
            throw error
        }
        try await CommandSupport.shutdown([client, upstreamClient])
    }
}

/// The demo's wiring, shared with the tests.
struct DemoSetup {
    var gateway: GatewayConfiguration
    var idp: DevIdentityProviderConfiguration
    var keyRing: KeyRing
    static let clientSecret = "demo-secret-not-for-production"

    static func make(port: Int, idpPort: Int, apiPort: Int, adminPort: Int?, accessTokenLifetime: Int64) throws
        -> DemoSetup
    {
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
        bff.apis = [
            APIRouteConfiguration(
                path: "/api/weatherforecast", upstream: "http://127.0.0.1:\(apiPort)/weatherforecast", token: .user)
        ]
        let idp = DevIdentityProviderConfiguration(
            issuer: issuer,
            clients: [
                DevClient(
                    clientID: "bff-demo", clientSecret: clientSecret, redirectURIs: [origin + "/signin-oidc"],
                    postLogoutRedirectURIs: [origin + "/signout-callback-oidc"],
                    backchannelLogoutURI: origin + "/bff/backchannel",
                    frontchannelLogoutURI: origin + "/bff/frontchannel")
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

/// The demo's local API: `GET /api/local/weatherforecast`, served by the gateway itself as a BFF API
/// endpoint (library mode: anti-forgery + session).
enum DemoAPI {
    static func add(to router: Router<BasicBFFRequestContext>, bff: BFF) {
        router.group("api/local")
            .add(middleware: BFFAPIMiddleware(bff: bff))
            .get("weatherforecast") { _, context in
                BFFResponses.json(forecastJSON(user: context.session?.subject ?? "anonymous", source: "local"))
            }
    }

    static func forecastJSON(user: String, source: String) -> String {
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
        return
            "{\"user\":\(JSONText.quote(user)),\"source\":\"\(source)\",\"forecast\":[\(items.joined(separator: ","))]}"
    }
}

/// The demo's sample API: a separate upstream (its own listener) that only answers requests
/// carrying a current access token from the development IdP — what a real API behind the BFF does.
/// A DPoP-bound token (RFC 9449) must come as `Authorization: DPoP` with a proof of its key for
/// this request; presented as a bare bearer token it is refused, so a stolen token alone is useless.
enum SampleAPI {
    static let dpopField = HTTPField.Name("DPoP")!  // justified: a valid constant name
    static func makeApplication(idp: DevIdentityProvider, port: Int, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        let proofs = DevDPoPVerifier()
        router.get("weatherforecast") { request, _ -> Response in
            func refuse(_ scheme: String, _ error: String) -> Response {
                Response(
                    status: .unauthorized,
                    headers: [.wwwAuthenticate: "\(scheme) error=\"\(error)\"", .contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\"\(error)\"}")))
            }
            guard let authorization = request.headers[.authorization],
                let space = authorization.firstIndex(of: " ")
            else { return refuse("Bearer", "invalid_token") }
            let scheme = authorization[..<space].lowercased()
            let token = String(authorization[authorization.index(after: space)...])
            guard scheme == "bearer" || scheme == "dpop", let binding = await idp.binding(accessToken: token),
                let user = await idp.introspect(accessToken: token)
            else { return refuse("Bearer", "invalid_token") }
            if let jkt = binding {
                let proofField = request.headers[values: SampleAPI.dpopField]
                guard scheme == "dpop", proofField.count == 1 else { return refuse("DPoP", "invalid_token") }
                // htu is compared with the target as sent (not percent-decoded).
                let target = request.uri.description
                let url =
                    "http://127.0.0.1:\(port)"
                    + (target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "")
                switch proofs.verify(
                    proofField[0], method: request.method.rawValue, url: url, accessToken: token,
                    now: SystemTimeSource().now)
                {
                case .success(let thumbprint) where thumbprint == jkt: break
                case .success: return refuse("DPoP", "invalid_dpop_proof")
                case .failure(let refusal):
                    logger.debug("DPoP proof refused", metadata: ["reason": .string(refusal.reason)])
                    return refuse("DPoP", "invalid_dpop_proof")
                }
            } else if scheme != "bearer" {
                return refuse("Bearer", "invalid_token")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(
                    byteBuffer: ByteBuffer(string: DemoAPI.forecastJSON(user: user.subject, source: "sample-api"))))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "bff-sample-api"),
            logger: logger)
    }
}
