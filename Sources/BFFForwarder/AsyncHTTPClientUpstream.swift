import AsyncHTTPClient
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// ``UpstreamTransport`` on AsyncHTTPClient: correct and streaming, but not the fastest path
/// (measured ~9–10k req/s on two cores); the NIO connection pool replaces it on the hot path.
public struct AsyncHTTPClientUpstream: UpstreamTransport {
    let client: HTTPClient

    /// Wraps a client the caller owns and shuts down.
    public init(client: HTTPClient) { self.client = client }

    /// A client configured for upstream APIs: HTTP/1.1, no redirects, no decompression.
    /// `tls` replaces the default client TLS configuration (system trust store, full verification).
    public static func makeClient(poolSize: Int = 256, tls: TLSConfiguration? = nil) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        if let tls { configuration.tlsConfiguration = tls }
        configuration.httpVersion = .http1Only
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(
            idleTimeout: .seconds(50), concurrentHTTP1ConnectionsPerHostSoftLimit: poolSize)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func send(_ request: UpstreamRequest, body: RequestBody?) async throws -> UpstreamResponse {
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers { outgoing.headers.add(name: field.name.rawName, value: field.value) }
        if let body {
            outgoing.body = .stream(body, length: request.contentLength.map { .known(Int64($0)) } ?? .unknown)
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(outgoing, timeout: TimeAmount(request.timeout))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw UpstreamError.timeout
        } catch {
            throw UpstreamError.unavailable
        }
        var head = HTTPResponse(
            status: .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase))
        for header in response.headers {
            if let name = HTTPField.Name(header.name) {
                head.headerFields.append(HTTPField(name: name, value: header.value))
            }
        }
        return UpstreamResponse(head: head, body: ResponseBody(asyncSequence: response.body))
    }
}
