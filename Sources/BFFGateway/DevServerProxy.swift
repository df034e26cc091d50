import BFFCore
import BFFForwarder
import BFFHummingbird
import HTTPTypes
import Hummingbird
import Logging

/// `static.devServer`: every request that is not the BFF's (management endpoints, callbacks) or an
/// API route (those are answered before this) goes to a local development server — Vite, webpack —
/// so `npm run dev` and the gateway give one origin with a real login. The dev server never sees the
/// session: `Cookie` and `Authorization` are removed, and it cannot set cookies on the gateway's
/// origin. Its HMR WebSocket is bridged by ``BFFWebSocketBridge``'s dev-server fallback.
struct DevServerMiddleware<Context: RequestContext>: RouterMiddleware {
    /// `http://127.0.0.1:5173` (no trailing slash).
    let origin: String
    let transport: any UpstreamTransport
    /// Whose paths stay the gateway's (``BFF/isOwnPath(_:)``).
    let bff: BFF
    let logger: Logger

    init(devServer: String, transport: any UpstreamTransport, bff: BFF, logger: Logger) {
        self.origin = devServer.hasSuffix("/") ? String(devServer.dropLast()) : devServer
        self.transport = transport
        self.bff = bff
        self.logger = logger
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let target = request.head.path ?? "/"
        let path = target.prefix { $0 != "?" }
        guard target.hasPrefix("/"), !target.hasPrefix("//"), !bff.isOwnPath(path) else {
            return try await next(request, context)
        }
        var headers = HTTPFields()
        let listed = Set(
            request.headers[values: .connection].flatMap { $0.split(separator: ",") }
                .map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        for field in request.headers {
            let name = field.name.canonicalName
            if DevServerFields.request.contains(name) || listed.contains(name) { continue }
            headers.append(field)
        }
        let contentLength = request.headers[.contentLength].flatMap { Int($0) }
        let hasBody = contentLength.map { $0 > 0 } ?? (request.headers[.transferEncoding] != nil)
        let upstream: UpstreamResponse
        do {
            upstream = try await transport.send(
                UpstreamRequest(
                    method: request.method, url: origin + target, headers: headers, contentLength: contentLength,
                    timeout: .seconds(30)),
                body: hasBody ? request.body : nil)
        } catch {
            logger.warning("dev server unavailable", metadata: ["bff.error": "\(error)"])
            return BFFResponses.problem(.upstreamUnavailable)
        }
        guard (100...599).contains(upstream.head.status.code) else {
            logger.warning(
                "dev server answered an invalid status", metadata: ["bff.status": "\(upstream.head.status.code)"])
            return BFFResponses.problem(.upstreamUnavailable)
        }
        let listedByUpstream = Set(
            upstream.head.headerFields[values: .connection].flatMap { $0.split(separator: ",") }
                .map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        var responseHeaders = HTTPFields()
        for field in upstream.head.headerFields {
            let name = field.name.canonicalName
            if DevServerFields.response.contains(name) || listedByUpstream.contains(name) { continue }
            responseHeaders.append(field)
        }
        return Response(status: upstream.head.status, headers: responseHeaders, body: upstream.body)
    }
}

/// Header fields the dev-server proxy drops.
enum DevServerFields {
    /// Request headers never sent to the dev server: the session, credentials, hop-by-hop fields
    /// (and the length, which the transport writes from the body it sends).
    static let request: Set<String> = [
        "cookie", "authorization", "proxy-authorization", "content-length", "connection", "keep-alive", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "proxy-connection",
    ]
    /// Response headers never passed to the browser: cookies for the gateway's origin (and
    /// `Clear-Site-Data`, which could erase the session cookie), hop-by-hop.
    static let response: Set<String> = [
        "set-cookie", "set-cookie2", "clear-site-data", "connection", "keep-alive", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-connection",
    ]

}
