import BFFCore
import BFFOIDC
import Crypto
import Logging
import Synchronization

/// Client-credentials tokens, cached per (scopes, resource) until 60 s before expiry and fetched
/// at most once at a time per key (a ``TokenFlights``).
final class ClientTokenCache: Sendable {
    struct Cached: Sendable {
        let token: String
        let expiresAt: UnixTime
    }
    let tokens: TokenEndpointClient
    let time: any TimeSource
    private let flights: TokenFlights<String, Cached>
    /// Number of client-credentials requests sent.
    let requests = Mutex(0)

    let metrics: BFFMetrics

    init(tokens: TokenEndpointClient, time: any TimeSource, metrics: BFFMetrics) {
        self.metrics = metrics
        self.tokens = tokens
        self.time = time
        self.flights = TokenFlights(retention: 86_400, time: time) { cached, _, now in cached.expiresAt - 60 > now }
    }

    static func key(scopes: [String]?, resource: String?) -> String {
        (scopes ?? []).joined(separator: " ") + "\u{0}" + (resource ?? "")
    }

    /// The cached token for (scopes, resource) if it is valid for more than 60 s; never fetches.
    func cachedToken(scopes: [String]?, resource: String?) -> String? {
        let token = flights.usableValue(Self.key(scopes: scopes, resource: resource))?.token
        if token != nil { metrics.clientToken(cacheHit: true) }
        return token
    }

    func token(scopes: [String]?, resource: String?) async throws -> String {
        let fetched = Mutex(false)
        defer { metrics.clientToken(cacheHit: !fetched.withLock { $0 }) }
        return try await flights.value(Self.key(scopes: scopes, resource: resource)) {
            fetched.withLock { $0 = true }
            self.requests.withLock { $0 += 1 }
            let response = try await self.tokens.clientCredentials(
                scope: scopes?.joined(separator: " "), resource: resource)
            return Cached(token: response.accessToken, expiresAt: self.time.now + (response.expiresIn ?? 300))
        }.token
    }
}
