import AsyncHTTPClient
import BFFCore
import NIOCore
import NIOHTTP1

/// One back-channel request to the IdP.
public struct OIDCHTTPRequest: Sendable {
    /// `GET` or `POST`.
    public var method: String
    /// Absolute URL.
    public var url: String
    /// Request headers.
    public var headers: [(String, String)]
    /// Body, for POST.
    public var body: [UInt8]?

    /// Creates a request.
    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// The IdP's answer.
public struct OIDCHTTPResponse: Sendable {
    /// HTTP status.
    public var status: Int
    /// Response headers (names lower-cased).
    public var headers: [(String, String)]
    /// Body (bounded by the client).
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// First value of a header.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.0 == lower }?.1
    }
}

/// The seam between the relying party and the network; tests may substitute it.
public protocol OIDCHTTPClient: Sendable {
    /// Sends `request`, failing after `timeout`. Throws only for transport failures.
    func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse
}

/// ``OIDCHTTPClient`` on AsyncHTTPClient: no redirects followed, bodies capped at 1 MiB.
public struct AsyncHTTPClientTransport: OIDCHTTPClient {
    let client: HTTPClient
    /// Largest response body accepted.
    public static let maximumBodyBytes = 1 << 20

    /// Wraps an `HTTPClient` the caller owns (and shuts down).
    public init(client: HTTPClient) { self.client = client }

    /// A client configured for IdP calls: no redirects, no decompression bombs, short connect timeout.
    public static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse {
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if outgoing.headers["user-agent"].isEmpty { outgoing.headers.add(name: "user-agent", value: "swift-bff") }
        if let body = request.body { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(
            outgoing,
            timeout: TimeAmount(timeout))
        let buffer = try await response.body.collect(upTo: AsyncHTTPClientTransport.maximumBodyBytes)
        return OIDCHTTPResponse(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name.lowercased(), $0.value) },
            body: Array(buffer.readableBytesView))
    }
}
