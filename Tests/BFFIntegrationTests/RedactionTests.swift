import BFFCore
import BFFSessionStorePostgres
import Foundation
import Logging
import Testing

@testable import BFFGateway

/// ServiceLifecycle logs every service with `"\(service)"` at debug level, and a struct prints its
/// fields: no secret may be reachable that way (the client secret, the sealing keys, tokens, a
/// database password).
@Suite("Secrets never print")
struct RedactionTests {
    @Test func servicesAndConfigurationsPrintNoSecret() async throws {
        let sealing: [UInt8] = Array(repeating: 0x5A, count: 32)
        try await TestEnvironment.run(
            keyRing: try KeyRing(keys: [KeyRing.Key(id: "k1", secret: sealing)]),
            configure: { $0.oidc.clientSecret = "TOPSECRET-CLIENT-SECRET" }
        ) { env, _ in
            var printed: [String] = []
            for service in [env.gateway.service] + env.gateway.maintenance {
                printed.append(String(describing: service))
                printed.append(String(reflecting: service))
            }
            printed.append(String(describing: env.gateway.bff))
            printed.append(String(reflecting: env.gateway.bff.configuration))
            printed.append(String(describing: env.gateway.bff.configuration.oidc))
            for text in printed {
                #expect(!text.contains("TOPSECRET"), "\(text.prefix(200))")
                #expect(!text.contains("\(sealing)"), "sealing key bytes")
                #expect(!text.contains(Base64URL.encode(sealing)))
            }
            #expect(printed.contains { $0.contains("clientSecret: <redacted>") })
        }
        var tokens = TokenSet(accessToken: "AT-SECRET", refreshToken: "RT-SECRET", idToken: "ID-SECRET")
        tokens.store(ResourceToken(resource: "urn:r", accessToken: "RES-SECRET", expiresAt: nil))
        let session = Session(
            issuer: "i", subject: "s", idpSessionID: nil, logoutID: "l", claimsJSON: [], tokens: tokens, createdAt: 0,
            renewedAt: 0)
        for text in [String(describing: session), String(reflecting: session)] {
            #expect(!text.contains("SECRET"), "\(text)")
        }
        let postgres = try PostgresSessionStore.Configuration(url: "postgres://bff:DB-SECRET@127.0.0.1:5432/bff")
        #expect(!String(describing: postgres).contains("DB-SECRET"))
        #expect(!String(reflecting: GatewayConfiguration(bff: BFFConfiguration())).isEmpty)
    }
}
