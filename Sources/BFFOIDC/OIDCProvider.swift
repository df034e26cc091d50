import BFFCore
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The IdP as the BFF sees it: cached discovery metadata and JWKS, fetched lazily and refreshed.
///
/// An unknown `kid` triggers at most one JWKS refetch per ``unknownKeyRefetchInterval`` (so a
/// flood of forged tokens cannot make the BFF hammer the IdP), then the token is judged with the
/// fresh set.
public actor OIDCProvider {
    /// The OIDC settings.
    public let configuration: OIDCConfiguration
    let http: any OIDCHTTPClient
    let time: any TimeSource
    let logger: Logger

    private var cachedMetadata: ProviderMetadata?
    private var metadataFetchedAt: UnixTime = 0
    private var cachedKeys: JSONWebKeySet?
    private var keysFetchedAt: UnixTime = 0
    private var lastUnknownKeyRefetch: UnixTime?
    private var rfc8414Revocation: String??

    /// Minimum seconds between JWKS refetches caused by unknown key ids.
    public let unknownKeyRefetchInterval: Int64
    /// Metadata and JWKS are refetched after this many seconds.
    public let cacheLifetime: Int64

    /// Creates a provider; nothing is fetched until first use.
    public init(
        configuration: OIDCConfiguration, http: any OIDCHTTPClient, time: any TimeSource = SystemTimeSource(),
        logger: Logger = Logger(label: "bff.oidc"), unknownKeyRefetchInterval: Int64 = 30, cacheLifetime: Int64 = 3600
    ) {
        self.configuration = configuration
        self.http = http
        self.time = time
        self.logger = logger
        self.unknownKeyRefetchInterval = unknownKeyRefetchInterval
        self.cacheLifetime = cacheLifetime
    }

    /// Whether metadata and keys are loaded (readiness).
    public var isReady: Bool { cachedMetadata != nil && cachedKeys != nil }

    /// Loads metadata and keys now; throws if either fails.
    public func warmUp() async throws {
        _ = try await metadata()
        _ = try await keySet()
    }

    /// Discovery metadata, fetched on first use and every ``cacheLifetime``; a failed refetch keeps
    /// serving the previous copy.
    public func metadata() async throws -> ProviderMetadata {
        let now = time.now
        if let cachedMetadata, now - metadataFetchedAt < cacheLifetime { return cachedMetadata }
        do {
            let issuer =
                configuration.issuer.hasSuffix("/") ? String(configuration.issuer.dropLast()) : configuration.issuer
            let body = try await fetch(issuer + "/.well-known/openid-configuration", what: "discovery")
            let metadata: ProviderMetadata
            do {
                metadata = try JSONDecoder().decode(ProviderMetadata.self, from: Data(body))
            } catch {
                throw OIDCError.invalidMetadata("discovery document is not valid JSON metadata")
            }
            try metadata.validate(expectedIssuer: configuration.issuer)
            cachedMetadata = metadata
            metadataFetchedAt = now
            return metadata
        } catch {
            if let cachedMetadata {
                logger.warning("discovery refresh failed; using cached metadata", metadata: ["bff.error": "\(error)"])
                return cachedMetadata
            }
            throw error
        }
    }

    /// The JWKS, fetched on first use and every ``cacheLifetime``.
    public func keySet() async throws -> JSONWebKeySet {
        let now = time.now
        if let cachedKeys, now - keysFetchedAt < cacheLifetime { return cachedKeys }
        do {
            return try await refetchKeys()
        } catch {
            if let cachedKeys { return cachedKeys }
            throw error
        }
    }

    /// The key for a JWS header; on an unknown `kid`, one rate-limited refetch.
    public func verificationKey(kid: String?, algorithm: String) async throws -> JSONWebKeySet.Entry? {
        let keys = try await keySet()
        if let entry = keys.key(kid: kid, algorithm: algorithm) { return entry }
        let now = time.now
        if let last = lastUnknownKeyRefetch, now - last < unknownKeyRefetchInterval { return nil }
        lastUnknownKeyRefetch = now
        logger.info("unknown signing key; refetching JWKS")
        let fresh = try await refetchKeys()
        return fresh.key(kid: kid, algorithm: algorithm)
    }

    /// The revocation endpoint: configured, else discovery, else RFC 8414 metadata (looked up once).
    public func revocationEndpoint() async -> String? {
        if let configured = configuration.revocationEndpoint { return configured }
        guard let metadata = try? await metadata() else { return nil }
        if let endpoint = metadata.revocationEndpoint { return endpoint }
        if let known = rfc8414Revocation { return known }
        guard let url = WebURL(configuration.issuer) else { return nil }
        let path = url.path == "/" ? "" : url.path
        let address = url.origin + "/.well-known/oauth-authorization-server" + path
        var found: String?
        if let body = try? await fetch(address, what: "RFC 8414 metadata"),
            let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(body)),
            object["issuer"]?.stringValue == configuration.issuer,
            let endpoint = object["revocation_endpoint"]?.stringValue,
            let endpointURL = WebURL(endpoint), endpointURL.scheme == "https" || endpointURL.isLoopback
        {
            found = endpoint
        }
        rfc8414Revocation = .some(found)
        return found
    }

    /// The end-session endpoint: configured, else discovery.
    public func endSessionEndpoint() async -> String? {
        if let configured = configuration.endSessionEndpoint { return configured }
        return try? await metadata().endSessionEndpoint
    }

    private func refetchKeys() async throws -> JSONWebKeySet {
        let metadata = try await metadata()
        let body = try await fetch(metadata.jwksURI, what: "JWKS")
        let keys = try await JSONWebKeySet(json: body)
        cachedKeys = keys
        keysFetchedAt = time.now
        return keys
    }

    func fetch(_ url: String, what: String) async throws -> [UInt8] {
        let response: OIDCHTTPResponse
        do {
            response = try await http.send(
                OIDCHTTPRequest(url: url, headers: [("accept", "application/json")]),
                timeout: configuration.requestTimeout)
        } catch {
            throw OIDCError.unavailable("\(what) request failed")
        }
        guard response.status == 200 else {
            if response.status >= 500 || response.status == 429 {
                throw OIDCError.unavailable("\(what) answered \(response.status)")
            }
            throw OIDCError.invalidMetadata("\(what) answered \(response.status)")
        }
        return response.body
    }
}
