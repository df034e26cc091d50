// A Hummingbird app that embeds swift-bff as a library: the BFF's management endpoints plus the app's own
// local API, protected as a BFF API (anti-forgery header + session, 401 problems instead of redirects).
//
//   BFF_ISSUER=http://127.0.0.1:5556 BFF_CLIENT_SECRET=... swift run ExampleLibraryApp
import AsyncHTTPClient
import BFFCore
import BFFHummingbird
import BFFOIDC
import Foundation
import Hummingbird
import Logging

let environment = ProcessInfo.processInfo.environment
var configuration = BFFConfiguration()
configuration.server.port = 8080
configuration.server.publicOrigin = "http://localhost:8080"
configuration.oidc.issuer = environment["BFF_ISSUER"] ?? "http://127.0.0.1:5556"
configuration.oidc.clientID = environment["BFF_CLIENT_ID"] ?? "bff-demo"
configuration.oidc.clientSecret = environment["BFF_CLIENT_SECRET"]
configuration.admin.listen = nil

let logger = Logger(label: "example")
// In production load the keys from your secret store; a fresh key means sessions end on restart.
let keyRing = try KeyRing(keys: [KeyRing.Key(id: "k1", secret: SystemSecureRandom().bytes(32))])
let httpClient = AsyncHTTPClientTransport.makeClient()
let bff = try BFF(
    configuration: configuration, keyRing: keyRing, http: AsyncHTTPClientTransport(client: httpClient),
    store: MemorySessionStore(), logger: logger)

let router = Router(context: BasicBFFRequestContext.self)
bff.addManagementRoutes(to: router)
router.group("api")
    .add(middleware: BFFAPIMiddleware(bff: bff))
    .get("weatherforecast") { _, context in
        let subject = context.session?.subject ?? "?"
        return BFFResponses.json("{\"user\":\(JSONText.quote(subject)),\"forecast\":\"sunny\"}")
    }

let app = Application(
    router: router, configuration: .init(address: .hostname("127.0.0.1", port: configuration.server.port)),
    logger: logger)
try await app.runService()
try await httpClient.shutdown()
