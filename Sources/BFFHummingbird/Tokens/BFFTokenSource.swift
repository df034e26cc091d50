import BFFCore
import BFFOIDC
import Crypto
import Logging
import Synchronization

/// The planner's view of the token managers.
struct BFFTokenSource: APITokenSource {
    let users: UserTokenManager
    let clients: ClientTokenCache
    /// The app's retrievers by route path (library mode).
    let retrievers: [String: any TokenRetriever]

    func retriever(for route: APIRouteConfiguration) -> (any TokenRetriever)? {
        retrievers.isEmpty ? nil : retrievers[route.path]
    }

    var freshness: TokenFreshness { users.freshness }

    func userToken(for loaded: inout LoadedSession, cookies: CookieHeader, route: APIRouteConfiguration) async
        -> UserTokenOutcome
    {
        if route.token == .exchange, let exchange = route.exchange {
            return await users.exchangedToken(for: &loaded, cookies: cookies, exchange: exchange)
        }
        if let resource = route.resource {
            return await users.accessToken(for: &loaded, cookies: cookies, resource: resource)
        }
        return await users.accessToken(for: &loaded, cookies: cookies)
    }

    func cachedClientToken(scopes: [String]?, resource: String?) -> String? {
        clients.cachedToken(scopes: scopes, resource: resource)
    }

    func clientToken(scopes: [String]?, resource: String?) async throws -> String {
        try await clients.token(scopes: scopes, resource: resource)
    }
}
