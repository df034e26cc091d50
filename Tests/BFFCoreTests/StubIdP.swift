import BFFCore
import BFFDevIdentityProvider
import BFFOIDC
import Synchronization

/// An in-memory IdP for unit tests: discovery + JWKS from ``DevSigningKeys``; counts JWKS fetches.
final class StubIdP: OIDCHTTPClient {
    let issuer = "https://idp.test"
    let keys: DevSigningKeys
    let jwksFetches = Mutex(0)
    let down = Mutex(false)

    init() throws { keys = try DevSigningKeys() }

    func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse {
        if down.withLock({ $0 }) { throw StubError() }
        if request.url == issuer + "/.well-known/openid-configuration" {
            let body = """
                {"issuer":"\(issuer)","authorization_endpoint":"\(issuer)/authorize","token_endpoint":"\(issuer)/token",\
                "jwks_uri":"\(issuer)/jwks","end_session_endpoint":"\(issuer)/logout"}
                """
            return OIDCHTTPResponse(status: 200, body: Array(body.utf8))
        }
        if request.url == issuer + "/jwks" {
            jwksFetches.withLock { $0 += 1 }
            return OIDCHTTPResponse(status: 200, body: Array(try keys.jwksJSON().utf8))
        }
        return OIDCHTTPResponse(status: 404, body: [])
    }

    struct StubError: Error {}
}
