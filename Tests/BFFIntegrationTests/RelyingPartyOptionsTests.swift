import BFFCore
import BFFTesting
import Foundation
import Logging
import Testing

@testable import BFFGateway

@Suite("Relying-party options against the dev IdP")
struct RelyingPartyOptionsTests {
    @Test func clientSecretPostWorks() async throws {
        try await TestEnvironment.run(configure: { $0.oidc.clientAuth = .clientSecretPost }) { env, browser in
            let callback = try await env.login(browser)
            #expect(callback.status == 302)
            #expect(try await env.user(browser).status == 200)
        }
    }

    @Test func authorizeParametersAreSent() async throws {
        try await TestEnvironment.run(configure: {
            $0.oidc.authorizeParameters = ["audience": "https://api.example.com"]
        }) { env, browser in
            let start = try await browser.get(env.origin + "/bff/login")
            let query = TestEnvironment.query(try #require(start.location))
            #expect(query["audience"] == "https://api.example.com")
            #expect(query["code_challenge_method"] == "S256")
            #expect(query["code_challenge"]?.count == 43)
            #expect(query["nonce"] != nil)
            #expect(query["redirect_uri"] == env.origin + "/signin-oidc")
        }
    }

    @Test func endSessionEndpointOverride() async throws {
        try await TestEnvironment.run(configure: {
            $0.oidc.endSessionEndpoint = "http://127.0.0.1:1/v2/logout?federated"
        }) { env, browser in
            try await env.login(browser)
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect(logout.location?.hasPrefix("http://127.0.0.1:1/v2/logout?federated&id_token_hint=") == true)
        }
    }

    @Test func loginSurvivesADeadRevocationEndpoint() async throws {
        try await TestEnvironment.run(configure: { $0.oidc.revocationEndpoint = "http://127.0.0.1:1/revoke" }) {
            env, browser in
            try await env.login(browser)
            let logout = try await browser.get(try await env.logoutURL(browser))
            #expect(logout.status == 302, "logout completes even if revocation fails")
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func generatedKeyIsPersistedAndReused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bff-key-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = GatewayConfiguration(bff: BFFConfiguration())
        configuration.dataDirectory = directory
        let first = try Gateway.keyRing(for: configuration, logger: Logger(label: "test"))
        let second = try Gateway.keyRing(for: configuration, logger: Logger(label: "test"))
        #expect(first.keyIDs == second.keyIDs)
        let sealed = try Sealer(keyRing: first).seal([1, 2, 3], purpose: .sessionTicket, binding: "c")
        #expect(Sealer(keyRing: second).open(sealed, purpose: .sessionTicket, binding: "c") == [1, 2, 3])
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/generated-key.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }
}
