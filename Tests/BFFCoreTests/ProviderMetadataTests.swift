import BFFCore
import BFFOIDC
import Synchronization
import Testing

/// An IdP that, like django-oauth-toolkit, lists revocation only in RFC 8414 metadata.
final class RFC8414OnlyIdP: OIDCHTTPClient {
    let issuer = "https://idp.test/o"
    let metadataRequests = Mutex(0)
    let discovery: String

    init(discoveryIssuer: String? = nil, endpoint: String = "https://idp.test/o/revoke_token/") {
        discovery = """
            {"issuer":"\(discoveryIssuer ?? "https://idp.test/o")","authorization_endpoint":"https://idp.test/o/authorize/",\
            "token_endpoint":"https://idp.test/o/token/","jwks_uri":"https://idp.test/o/.well-known/jwks.json",\
            "code_challenge_methods_supported":["plain","S256"]}
            """
        rfc8414 = "{\"issuer\":\"https://idp.test/o\",\"revocation_endpoint\":\"\(endpoint)\"}"
    }
    let rfc8414: String

    func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse {
        switch request.url {
        case "https://idp.test/o/.well-known/openid-configuration":
            return OIDCHTTPResponse(status: 200, body: Array(discovery.utf8))
        case "https://idp.test/.well-known/oauth-authorization-server/o":
            metadataRequests.withLock { $0 += 1 }
            return OIDCHTTPResponse(status: 200, body: Array(rfc8414.utf8))
        default:
            return OIDCHTTPResponse(status: 404, body: [])
        }
    }
}

@Suite("Provider metadata")
struct ProviderMetadataTests {
    func provider(_ idp: RFC8414OnlyIdP, configure: (inout OIDCConfiguration) -> Void = { _ in }) -> OIDCProvider {
        var configuration = OIDCConfiguration(issuer: "https://idp.test/o", clientID: "bff", clientSecret: "s")
        configure(&configuration)
        return OIDCProvider(configuration: configuration, http: idp)
    }

    @Test func revocationFallsBackToRFC8414OnceAndIsCached() async {
        let idp = RFC8414OnlyIdP()
        let provider = provider(idp)
        #expect(await provider.revocationEndpoint() == "https://idp.test/o/revoke_token/")
        #expect(await provider.revocationEndpoint() == "https://idp.test/o/revoke_token/")
        #expect(idp.metadataRequests.withLock { $0 } == 1)
    }

    @Test func configuredRevocationEndpointWins() async {
        let idp = RFC8414OnlyIdP()
        let provider = provider(idp) { $0.revocationEndpoint = "https://other.test/revoke" }
        #expect(await provider.revocationEndpoint() == "https://other.test/revoke")
        #expect(idp.metadataRequests.withLock { $0 } == 0)
    }

    @Test func insecureRFC8414EndpointIsIgnored() async {
        let provider = provider(RFC8414OnlyIdP(endpoint: "http://evil.example/revoke"))
        #expect(await provider.revocationEndpoint() == nil)
    }

    @Test func discoveryWithAnotherIssuerIsRejected() async {
        let provider = provider(RFC8414OnlyIdP(discoveryIssuer: "https://evil.test/o"))
        await #expect(throws: OIDCError.self) { _ = try await provider.metadata() }
    }

    @Test func unreachableIdPIsUnavailable() async {
        let provider = OIDCProvider(
            configuration: OIDCConfiguration(issuer: "https://idp.test", clientID: "bff", clientSecret: "s"),
            http: StubIdPDown())
        do {
            _ = try await provider.metadata()
            Issue.record("expected a failure")
        } catch let error as OIDCError {
            #expect(error.isUnavailable)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

struct StubIdPDown: OIDCHTTPClient {
    func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse {
        throw StubIdP.StubError()
    }
}
