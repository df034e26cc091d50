/// The access token a call carries, and the DPoP key it is bound to (RFC 9449), if any.
struct APICredential: Sendable {
    let token: String
    let dpop: DPoPKey?

    /// The session's token (or its token for `resource`): DPoP-bound when the session holds a key
    /// and that token came back as `DPoP`.
    static func user(_ token: String, session: Session, resource: String?) -> APICredential {
        APICredential(token: token, dpop: session.dpopBinding(resource: resource))
    }

    /// A client-credentials token (bearer).
    static func client(_ token: String) -> APICredential { APICredential(token: token, dpop: nil) }
}

extension Session {
    /// The key the session's user tokens are bound to: its DPoP key when the IdP issued `DPoP`
    /// tokens (RFC 9449 §5), else nil (bearer).
    public var dpopBinding: DPoPKey? { dpopBinding(resource: nil) }

    /// The key the session's token for `resource` (nil: its main access token) is bound to.
    public func dpopBinding(resource: String?) -> DPoPKey? {
        let type = resource.map { tokens.token(for: $0)?.tokenType } ?? tokens.tokenType
        guard let dpopKey, let type, type.utf8.count == 4, type.lowercased() == "dpop" else { return nil }
        return dpopKey
    }
}

/// Why a call to a route cannot proceed, with cookies to set on the refusal.
struct RouteRefusal: Error {
    let problem: Problem
    let cookies: [SetCookie]
}

extension APICallPlanner {
    /// The bearer token the route needs (none for `none`, the user's — refreshed when due — or a
    /// client-credentials token), plus cookies to set (a re-issued cookie-mode session, or
    /// clearing cookies when the session ended). The async half of the one credentials rule;
    /// ``immediateBearer(for:session:)`` is the same rule for what needs no I/O.
    func credentials(for route: APIRouteConfiguration, session: LoadedSession?, cookieHeader: CookieHeader) async
        -> Result<(credential: APICredential?, cookies: [SetCookie]), RouteRefusal>
    {
        if route.requiresStepUp, let session,
            let problem = StepUp.problem(
                route: route, session: session.session, now: sessions.now)
        {
            return .failure(RouteRefusal(problem: problem, cookies: []))
        }
        if let retriever = tokens.retriever(for: route) {
            if route.token.requiresUser, session == nil {
                return .failure(RouteRefusal(problem: .unauthenticated, cookies: []))
            }
            do {
                let token = try await retriever.token(for: route, session: session?.session)
                return .success((token.map(APICredential.client), []))
            } catch {
                logger.warning("the app's token retriever failed", metadata: ["bff.api": .string(route.path)])
                return .failure(RouteRefusal(problem: .idpUnavailable, cookies: []))
            }
        }
        var cookies: [SetCookie] = []
        var bearer: APICredential?
        if route.token.usesUserToken, var loaded = session {
            switch await tokens.userToken(for: &loaded, cookies: cookieHeader, route: route) {
            case .token(let token, let issued):
                bearer = .user(token, session: loaded.session, resource: route.heldTokenKey)
                // `oidc.dpop: required`: a session whose token is not bound (made before DPoP was
                // required) never sends a bearer token; the user signs in again.
                if requireDPoP, bearer?.dpop == nil {
                    return .failure(RouteRefusal(problem: .sessionExpired, cookies: []))
                }
                // Every call that uses the session renews its idle timeout (throttled); in cookie
                // mode a renewal re-issues the whole cookie, superseding `issued`.
                let renewed = await sessions.slide(&loaded, cookies: cookieHeader)
                cookies = renewed.isEmpty ? issued : renewed
            case .sessionEnded(let clearing):
                // `user` routes say so; `user-or-none` / `user-or-client` go on as anonymous callers.
                if route.token.requiresUser {
                    return .failure(RouteRefusal(problem: .sessionExpired, cookies: clearing))
                }
                cookies = clearing
            case .idpUnavailable:
                return .failure(RouteRefusal(problem: .idpUnavailable, cookies: []))
            case .resourceRefused:
                // Signed in, but no token for this API: `user` routes refuse, the others go on
                // without a user token.
                if route.token.requiresUser { return .failure(RouteRefusal(problem: .forbidden, cookies: [])) }
            }
        } else if route.token.requiresUser {
            return .failure(RouteRefusal(problem: .unauthenticated, cookies: []))
        }
        if bearer == nil, route.token.usesClientToken {
            do {
                bearer = .client(try await tokens.clientToken(scopes: route.scopes, resource: route.resource))
            } catch {
                logger.warning("client credentials token unavailable", metadata: ["bff.error": "\(error)"])
                return .failure(RouteRefusal(problem: .idpUnavailable, cookies: cookies))
            }
        }
        return .success((bearer, cookies))
    }
}
