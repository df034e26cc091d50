import BFFCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// A small, standards-following OpenID Provider for `bff demo`, local SPA work and fast tests.
///
/// Discovery, JWKS (RS256 and ES256 keys), authorization code flow with a real HTML login form and
/// mandatory PKCE S256, token endpoint (code, refresh with rotation and reuse detection, client
/// credentials), userinfo, revocation and RP-initiated logout. It keeps everything in memory.
/// It is never used by the gateway's own code paths.
public struct DevIdentityProvider: Sendable {
    /// Settings.
    public let configuration: DevIdentityProviderConfiguration
    /// Signing keys (tests rotate them or mint tokens with them).
    public let keys: DevSigningKeys
    let state = DevIdentityProviderState()
    let time: any TimeSource
    let random: any SecureRandom
    let basePath: String
    /// Proof checks at the token endpoint (its own replay cache).
    let dpop = DevDPoPVerifier()
    /// The `DPoP-Nonce` the token endpoint asks for when ``DevIdentityProviderConfiguration/dpopNonce``.
    let currentNonce: String

    static let dpopHeader = HTTPField.Name("DPoP")!  // justified: a valid constant field name
    static let dpopNonceHeader = HTTPField.Name("DPoP-Nonce")!  // justified: a valid constant field name

    /// Name of the IdP's own session cookie.
    static let sessionCookie = "devidp_session"

    /// Creates an IdP (generates keys unless given).
    public init(
        configuration: DevIdentityProviderConfiguration, keys: DevSigningKeys? = nil,
        time: any TimeSource = SystemTimeSource(), random: any SecureRandom = SystemSecureRandom()
    ) throws {
        self.configuration = configuration
        self.keys = try keys ?? DevSigningKeys()
        self.time = time
        self.random = random
        self.currentNonce = random.token(byteCount: 16)
        let path = WebURL(configuration.issuer)?.path ?? ""
        self.basePath = path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// The user an access token was issued to, if it is current (for in-process sample APIs).
    public func introspect(accessToken: String) async -> DevUser? {
        await state.accessTokenUser(accessToken, now: time.now)
    }

    /// The DPoP binding of a current access token: `.some(jkt)` for a bound one, `.some(nil)`
    /// for a bearer token, nil when it is not current (for in-process sample APIs).
    public func binding(accessToken: String) async -> String?? {
        await state.accessTokenBinding(accessToken, now: time.now)
    }

    /// Whether `accessToken` is a current client-credentials token.
    public func isCurrentClientToken(_ accessToken: String) async -> Bool {
        await state.isCurrentClientToken(accessToken, now: time.now)
    }

    /// Counters (token requests, refreshes, revocations, logouts).
    public func statistics() async -> DevIdentityProviderStatistics { await state.statistics }

    /// The discovery document.
    public var discoveryJSON: String {
        let issuer = configuration.issuer
        return """
            {"issuer":\(JSONText.quote(issuer)),"authorization_endpoint":\(JSONText.quote(issuer + "/authorize")),\
            "token_endpoint":\(JSONText.quote(issuer + "/token")),"jwks_uri":\(JSONText.quote(issuer + "/jwks")),\
            "userinfo_endpoint":\(JSONText.quote(issuer + "/userinfo")),"end_session_endpoint":\(JSONText.quote(issuer + "/end_session")),\
            "revocation_endpoint":\(JSONText.quote(issuer + "/revoke")),\
            "frontchannel_logout_supported":true,"frontchannel_logout_session_supported":true,\
            "backchannel_logout_supported":true,"backchannel_logout_session_supported":true,\
            "response_types_supported":["code"],"grant_types_supported":["authorization_code","refresh_token","client_credentials","urn:ietf:params:oauth:grant-type:token-exchange"],\
            "subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256","ES256"],\
            "code_challenge_methods_supported":["S256"],"scopes_supported":["openid","profile","email","offline_access","api"],\
            "token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","private_key_jwt"],\
            "token_endpoint_auth_signing_alg_values_supported":["ES256","RS256","PS256"],\
            "dpop_signing_alg_values_supported":["ES256","RS256","PS256"],\
            "prompt_values_supported":["none","login","consent","select_account"],\
            "acr_values_supported":["pwd","mfa"],\
            "authorization_response_iss_parameter_supported":\(configuration.sendIssParameter),\
            "claims_supported":["sub","iss","aud","exp","iat","auth_time","acr","nonce","sid","name","preferred_username","email"]}
            """
    }

    /// Adds the IdP's endpoints to `router`.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let base = basePath
        router.get(RouterPath(base + "/.well-known/openid-configuration")) { _, _ in
            DevIdentityProvider.json(self.discoveryJSON, cacheable: true)
        }
        router.get(RouterPath(base + "/jwks")) { _, _ in
            DevIdentityProvider.json((try? self.keys.jwksJSON()) ?? "{\"keys\":[]}", cacheable: true)
        }
        router.get(RouterPath(base + "/authorize")) { request, _ in await self.authorize(request) }
        router.post(RouterPath(base + "/authorize")) { request, _ in
            let body = try await request.body.collect(upTo: 16 * 1024)
            return await self.submitLogin(request, form: Array(body.readableBytesView))
        }
        router.post(RouterPath(base + "/token")) { request, _ in
            let body = try await request.body.collect(upTo: 64 * 1024)
            return await self.token(request, form: Array(body.readableBytesView))
        }
        router.get(RouterPath(base + "/userinfo")) { request, _ in await self.userInfo(request) }
        router.post(RouterPath(base + "/userinfo")) { request, _ in await self.userInfo(request) }
        router.post(RouterPath(base + "/revoke")) { request, _ in
            let body = try await request.body.collect(upTo: 64 * 1024)
            return await self.revoke(request, form: Array(body.readableBytesView))
        }
        router.get(RouterPath(base + "/end_session")) { request, _ in await self.endSession(request) }
    }

    /// An `Application` serving only the IdP on `host:port`.
    public func makeApplication(host: String, port: Int, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        addRoutes(to: router)
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "bff-dev-idp"),
            logger: logger)
    }

    func client(_ id: String?) -> DevClient? {
        guard let id else { return nil }
        return configuration.clients.first { $0.clientID == id }
    }

    static func json(_ body: String, status: HTTPResponse.Status = .ok, cacheable: Bool = false) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json", .cacheControl: cacheable ? "max-age=60" : "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func oauthError(_ code: String, status: HTTPResponse.Status = .badRequest) -> Response {
        json("{\"error\":\(JSONText.quote(code))}", status: status)
    }

    /// An HTML page. `formTargets` are origins a form on it may end up at (browsers apply
    /// `form-action` to the redirects after a submission: the login form's redirect goes to the
    /// client); `frames` are origins it may load in iframes (front-channel logout).
    static func html(
        _ body: String, status: HTTPResponse.Status = .ok, cookies: [String] = [], formTargets: [String] = [],
        frames: [String] = []
    ) -> Response {
        let formAction = (["'self'"] + Set(formTargets).sorted()).joined(separator: " ")
        let frameSource = frames.isEmpty ? "" : "; frame-src " + Set(frames).sorted().joined(separator: " ")
        var headers: HTTPFields = [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
            .contentSecurityPolicy:
                "default-src 'none'; style-src 'unsafe-inline'; form-action \(formAction); frame-ancestors 'none'\(frameSource)",
        ]
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func redirect(_ location: String, cookies: [String] = []) -> Response {
        var headers: HTTPFields = [.location: location, .cacheControl: "no-store"]
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .found, headers: headers)
    }
}
