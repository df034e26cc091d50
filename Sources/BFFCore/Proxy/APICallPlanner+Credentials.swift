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
        -> Result<(bearer: String?, cookies: [SetCookie]), RouteRefusal>
    {
        var cookies: [SetCookie] = []
        var bearer: String?
        if route.token.usesUserToken, var loaded = session {
            switch await tokens.userToken(for: &loaded, cookies: cookieHeader, resource: route.resource) {
            case .token(let token, let issued):
                bearer = token
                // Every call that uses the session renews its idle timeout (throttled); in cookie
                // mode a renewal re-issues the whole cookie, superseding `issued`.
                let renewed = await sessions.slide(&loaded, cookies: cookieHeader)
                cookies = renewed.isEmpty ? issued : renewed
            case .sessionEnded(let clearing):
                // `user` routes say so; `user-or-none` / `user-or-client` go on as anonymous callers.
                if route.token == .user { return .failure(RouteRefusal(problem: .sessionExpired, cookies: clearing)) }
                cookies = clearing
            case .idpUnavailable:
                return .failure(RouteRefusal(problem: .idpUnavailable, cookies: []))
            case .resourceRefused:
                // Signed in, but no token for this API: `user` routes refuse, the others go on
                // without a user token.
                if route.token == .user { return .failure(RouteRefusal(problem: .forbidden, cookies: [])) }
            }
        } else if route.token.requiresUser {
            return .failure(RouteRefusal(problem: .unauthenticated, cookies: []))
        }
        if bearer == nil, route.token.usesClientToken {
            do {
                bearer = try await tokens.clientToken(scopes: route.scopes, resource: route.resource)
            } catch {
                logger.warning("client credentials token unavailable", metadata: ["bff.error": "\(error)"])
                return .failure(RouteRefusal(problem: .idpUnavailable, cookies: cookies))
            }
        }
        return .success((bearer, cookies))
    }
}
