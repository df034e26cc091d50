/// What happened when a user token was needed.
public enum UserTokenOutcome: Sendable {
    /// A usable access token, plus cookies to set if the session was re-sealed (cookie mode).
    case token(String, cookies: [SetCookie])
    /// The session ended (refresh rejected, or expired without a refresh token); cookies clear it.
    case sessionEnded(cookies: [SetCookie])
    /// The IdP could not be reached; the session is kept.
    case idpUnavailable
    /// No token can be had for the route's resource (the IdP refused it, or no refresh token is
    /// held); the session is kept.
    case resourceRefused
}

/// Where the API-call planner gets tokens that need I/O (the OIDC side implements it).
public protocol APITokenSource: Sendable {
    /// The one freshness rule for access tokens.
    var freshness: TokenFreshness { get }
    /// The session's access token for `route` — its own for an RFC 8707 `resource`, or the
    /// result of an RFC 8693 exchange for `token: exchange` — refreshed or renewed when due.
    func userToken(for loaded: inout LoadedSession, cookies: CookieHeader, route: APIRouteConfiguration) async
        -> UserTokenOutcome
    /// A cached client-credentials token for (scopes, resource) valid for more than 60 s; never fetches.
    func cachedClientToken(scopes: [String]?, resource: String?) -> String?
    /// A client-credentials token for (scopes, resource), fetched when none is cached.
    func clientToken(scopes: [String]?, resource: String?) async throws -> String
    /// The app's own retriever for `route` (library mode), if it registered one.
    /// Asked once per route when an ``APICallPlanner`` is built (its answer must not change for
    /// that planner's life: the planner decides at once when a route has none).
    func retriever(for route: APIRouteConfiguration) -> (any TokenRetriever)?
}

extension APITokenSource {
    /// No app retrievers.
    public func retriever(for route: APIRouteConfiguration) -> (any TokenRetriever)? { nil }
}

/// Supplies the token of a route in an app's own way (library mode: `BFF(tokenRetrievers:)`), in
/// place of the route's `token` rule: the gateway still refuses anonymous callers of routes whose
/// `token` requires a user, applies anti-forgery and step-up, and sends what this returns as
/// `Authorization: Bearer`.
public protocol TokenRetriever: Sendable {
    /// The token for a call to `route` on behalf of `session` (nil: anonymous); nil sends none. A
    /// thrown error answers 503 `idp-unavailable` (logged, never shown).
    func token(for route: APIRouteConfiguration, session: Session?) async throws -> String?
}
