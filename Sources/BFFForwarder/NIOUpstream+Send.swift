import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

// The router pipeline's side of the forwarder: one request sent from a task (`UpstreamTransport`),
// its body uploaded and its response streamed, and how upstream URLs are taken apart.
extension NIOUpstream {
    public func send(_ request: UpstreamRequest, body: RequestBody?) async throws -> UpstreamResponse {
        guard let target = Target(request.url) else { throw UpstreamError.unavailable }
        if target.tls {
            guard let tlsFallback else { throw UpstreamError.unavailable }
            return try await tlsFallback.send(request, body: body)
        }
        let pool = pool(host: target.host, port: target.port, eventLoop: request.eventLoop ?? group.any())
        var head = HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: request.method.rawValue), uri: target.pathAndQuery)
        head.headers.reserveCapacity(request.headers.count + 3)
        head.headers.add(name: "host", value: target.hostHeader)
        for field in request.headers { head.headers.add(name: field.name.rawName, value: field.value) }
        if let length = request.contentLength {
            head.headers.add(name: "content-length", value: String(length))
        } else if body != nil {
            head.headers.add(name: "transfer-encoding", value: "chunked")
        }
        let timeout = TimeAmount(request.timeout)
        let retryable = body == nil && (request.method == .get || request.method == .head || request.method == .options)

        var attempt = 0
        while true {
            attempt += 1
            let lease = try await pool.lease(fresh: attempt > 1)
            let handler = lease.connection.handler
            let stream = ResponseStream()
            let outgoingHead = head
            handler.eventLoop.execute {
                let generation = handler.value.begin(
                    stream: stream, head: outgoingHead, hasBody: body != nil, timeout: timeout)
                stream.onResume { handler.eventLoop.execute { handler.value.resume(generation: generation) } }
            }
            // Whether the whole request went up: a connection whose upload was cut short is never
            // reused (the handler checks it too, on the event loop).
            var uploaded = true
            if let body {
                switch await upload(body, on: lease.connection.channel) {
                case .complete: break
                case .clientFailed:
                    // The client's body broke off or was malformed: its fault, not the upstream's.
                    lease.end(reusable: false)
                    throw UpstreamError.badRequestBody
                case .upstreamFailed:
                    uploaded = false
                    // The upstream may have answered early and closed; a head, if any, is still delivered.
                    if !stream.receivedAnything {
                        lease.end(reusable: false)
                        throw UpstreamError.unavailable
                    }
                }
            }
            switch await stream.next() {
            case .head(let responseHead):
                // Fast path: the whole (small) response is already here. Return the connection now and
                // hand the server one buffer, so head, body and end leave in a single write.
                if let complete = stream.takeBufferedRemainder(limit: 64 * 1024) {
                    lease.end(reusable: responseHead.isKeepAlive && uploaded)
                    return UpstreamResponse(head: Self.convert(responseHead), body: ResponseBody(byteBuffer: complete))
                }
                return UpstreamResponse(
                    head: Self.convert(responseHead),
                    body: responseBody(stream: stream, lease: lease, keepAlive: responseHead.isKeepAlive && uploaded))
            case .failed(let error):
                lease.end(reusable: false)
                if error == .unavailable, retryable, attempt == 1, !stream.receivedAnything { continue }
                throw error
            case .body, .end:
                lease.end(reusable: false)
                throw UpstreamError.unavailable
            }
        }
    }

    enum UploadOutcome { case complete, clientFailed, upstreamFailed }

    /// Sends the request body and its end. A failure reading the client's body is told apart from
    /// a failure writing to the upstream.
    func upload(_ body: RequestBody, on channel: any Channel) async -> UploadOutcome {
        var iterator = body.makeAsyncIterator()
        while true {
            let next: ByteBuffer?
            do {
                next = try await iterator.next()
            } catch {
                return .clientFailed
            }
            do {
                guard let buffer = next else {
                    try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
                    return .complete
                }
                try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(buffer))).get()
            } catch {
                return .upstreamFailed
            }
        }
    }

    /// The streamed body. The closure owns the lease: it ends it on every way out, and if the server
    /// never runs the closure (the client was gone before the head could be written), dropping the
    /// response drops the lease, which closes the connection.
    func responseBody(stream: ResponseStream, lease: UpstreamLease, keepAlive: Bool) -> ResponseBody {
        ResponseBody { writer in
            do {
                loop: while true {
                    switch await stream.next() {
                    case .body(let buffer): try await writer.write(buffer)
                    case .end: break loop
                    case .failed(let error): throw error
                    case .head: throw UpstreamError.unavailable
                    }
                }
            } catch {
                lease.end(reusable: false)
                throw error
            }
            // The pool checks on the connection's event loop that it is clean before keeping it.
            lease.end(reusable: keepAlive)
            try await writer.finish(nil)
        }
    }

    static func convert(_ head: HTTPResponseHead) -> HTTPResponse {
        var response = HTTPResponse(status: .init(code: Int(head.status.code), reasonPhrase: head.status.reasonPhrase))
        response.headerFields.reserveCapacity(head.headers.count)
        for (name, value) in head.headers {
            if let fieldName = HTTPField.Name(name) {
                response.headerFields.append(HTTPField(name: fieldName, value: value))
            }
        }
        return response
    }

    /// Where an upstream URL points.
    /// An upstream URL taken apart.
    public struct Target: Sendable {
        /// `https`.
        public var tls: Bool
        /// The host to connect to (IPv6 without brackets).
        public var host: String
        /// The port.
        public var port: Int
        /// The `Host` header value.
        public var hostHeader: String
        /// The path (at least `/`) and query.
        public var pathAndQuery: String

        /// Parses an absolute `http`/`https` URL; nil for anything else.
        public init?(_ url: String) {
            let tls: Bool
            let rest: Substring
            if url.hasPrefix("http://") {
                tls = false
                rest = url.dropFirst(7)
            } else if url.hasPrefix("https://") {
                tls = true
                rest = url.dropFirst(8)
            } else {
                return nil
            }
            let slash = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            let authority = rest[..<slash]
            var path = String(rest[slash...])
            if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
            var host = Substring(authority)
            var port = tls ? 443 : 80
            if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
                guard let value = Int(authority[authority.index(after: colon)...]) else { return nil }
                host = authority[..<colon]
                port = value
            }
            if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
            guard !host.isEmpty else { return nil }
            self.tls = tls
            self.host = String(host)
            self.port = port
            self.hostHeader = String(authority)
            self.pathAndQuery = path
        }
    }
}
