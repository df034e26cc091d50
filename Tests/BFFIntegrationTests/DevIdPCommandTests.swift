import Testing

@testable import BFFGateway

@Suite("bff dev-idp")
struct DevIdPCommandTests {
    @Test func loopbackOnlyUnlessAllowed() {
        #expect(DevIdPCommand.mayListen(on: "127.0.0.1", allowRemote: false))
        #expect(DevIdPCommand.mayListen(on: "localhost", allowRemote: false))
        #expect(DevIdPCommand.mayListen(on: "::1", allowRemote: false))
        #expect(!DevIdPCommand.mayListen(on: "0.0.0.0", allowRemote: false))
        #expect(!DevIdPCommand.mayListen(on: "192.0.2.10", allowRemote: false))
        #expect(!DevIdPCommand.mayListen(on: "::", allowRemote: false))
        #expect(DevIdPCommand.mayListen(on: "0.0.0.0", allowRemote: true))
    }

    @Test func parsesItsConfiguration() throws {
        let (host, port, settings) = try DevIdPCommand.parse(
            """
            listen: "127.0.0.1:6001"
            accessTokenLifetime: 2
            users: [{username: carol, password: pw, name: Carol}]
            clients:
              - clientId: spa-bff
                clientSecret: s
                redirectUris: ["http://localhost:5080/signin-oidc"]
            """, path: "test.yaml")
        #expect(host == "127.0.0.1")
        #expect(port == 6001)
        #expect(settings.issuer == "http://127.0.0.1:6001")
        #expect(settings.accessTokenLifetime == 2)
        #expect(settings.users.map(\.username) == ["carol"])
        #expect(settings.clients.first?.redirectURIs == ["http://localhost:5080/signin-oidc"])
    }
}
