import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// An upstream API for proxy tests: echoes what reached it, and misbehaves on request.
///
/// - `/echo/**`: JSON with method, path, query, every header, body length and SHA-256.
/// - `/status/{code}`: answers that status.
/// - `/slow/{milliseconds}`: answers after a delay.
/// - `/set-cookie`: sets a cookie named like the BFF's session cookie and an app cookie.
/// - `/hop`: answers with hop-by-hop headers and one named in `Connection`.
/// - `/download/{bytes}`: streams that many bytes in 64 KiB chunks (no Content-Length).
/// - `/stall/{bytes}`: sends the head and that many body bytes, then nothing for 5 s.
/// - `POST /early`: answers at once, before reading the request body.
/// - `/challenge/step-up`: 401 with RFC 9470's `insufficient_user_authentication` (`acr_values="mfa"`,
///   `max_age="60"`).
/// - `/challenge/nonce`: 401 `use_dpop_nonce` with `DPoP-Nonce: n-1` unless the request's `DPoP`
///   proof carries that nonce; then it echoes like `/echo`. `/challenge/count` says how many
///   challenges were sent.
/// Counts the DPoP nonce challenges `/challenge/nonce` sent.
final class ChallengeCounter: Sendable {
    private let value = Mutex(0)
    var count: Int { value.withLock { $0 } }
    func add() { value.withLock { $0 += 1 } }
}

/// Standard base64 (padded) from base64url.
func base64(_ text: String) -> String {
    var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while standard.count % 4 != 0 { standard += "=" }
    return standard
}

public enum EchoUpstream {
    /// An application serving the echo endpoints on `127.0.0.1:port`. `idleTimeout` closes idle
    /// keep-alive connections (to test pools against upstreams with short keep-alive).
    public static func makeApplication(port: Int, idleTimeout: Duration? = nil, logger: Logger)
        -> some ApplicationProtocol
    {
        let router = Router(context: EchoContext.self)
        for path: RouterPath in ["echo", "echo/**"] {
            for method: HTTPRequest.Method in [.get, .post, .put, .delete, .patch, .head] {
                router.on(path, method: method) { request, context in try await echo(request, peer: context.peerPort) }
            }
        }
        router.get("nocontent") { _, _ in Response(status: .noContent) }
        router.get("challenge/step-up") { _, _ in
            Response(
                status: .unauthorized,
                headers: [
                    .wwwAuthenticate:
                        #"Bearer error="insufficient_user_authentication", error_description="stronger", acr_values="mfa", max_age="60""#,
                    .contentType: "text/plain",
                ], body: .init(byteBuffer: ByteBuffer(string: "step up, please")))
        }
        // The same challenge with a body that drips for 10 s: nobody should wait for it.
        router.get("challenge/step-up-slow") { _, _ in
            Response(
                status: .unauthorized,
                headers: [.wwwAuthenticate: #"Bearer error="insufficient_user_authentication", acr_values="mfa""#],
                body: ResponseBody { writer in
                    for _ in 0..<10 {
                        try await writer.write(ByteBuffer(string: "."))
                        try await Task.sleep(for: .seconds(1))
                    }
                    try await writer.finish(nil)
                })
        }
        let challenges = ChallengeCounter()
        for method: HTTPRequest.Method in [.get, .delete, .post] {
            router.on("challenge/nonce", method: method) { request, context in
                let proof = request.headers[values: HTTPField.Name("DPoP") ?? .authorization].first ?? ""
                let parts = proof.split(separator: ".")
                let payload =
                    parts.count == 3
                    ? Data(base64Encoded: base64(String(parts[1]))).flatMap {
                        try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
                    } : nil
                if payload?["nonce"] as? String == "n-1" { return try await echo(request, peer: context.peerPort) }
                challenges.add()
                var headers: HTTPFields = [.wwwAuthenticate: #"DPoP error="use_dpop_nonce", error_description="nonce""#]
                if let name = HTTPField.Name("DPoP-Nonce") { headers[name] = "n-1" }
                return Response(
                    status: .unauthorized, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "nonce")))
            }
        }
        router.get("challenge/count") { _, _ in
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "\(challenges.count)")))
        }
        router.get("status/:code") { _, context in
            let code = context.parameters.get("code", as: Int.self) ?? 500
            return Response(
                status: .init(code: code), headers: [.contentType: "text/plain"],
                body: .init(byteBuffer: ByteBuffer(string: "status \(code)")))
        }
        router.get("slow/:ms") { _, context in
            let milliseconds = context.parameters.get("ms", as: Int.self) ?? 1000
            try await Task.sleep(for: .milliseconds(milliseconds))
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "slow")))
        }
        router.get("set-cookie") { _, _ in
            var headers: HTTPFields = [.contentType: "text/plain"]
            headers.append(HTTPField(name: .setCookie, value: "__Host-bff-session=evil; Path=/; Secure; HttpOnly"))
            headers.append(HTTPField(name: .setCookie, value: "__Host-bff-login.x=evil; Path=/"))
            headers.append(HTTPField(name: .setCookie, value: "app=ok; Path=/"))
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "cookies")))
        }
        router.get("hop") { _, _ in
            var headers: HTTPFields = [.contentType: "text/plain", .connection: "x-hop"]
            if let hop = HTTPField.Name("X-Hop") { headers[hop] = "1" }
            if let keepAlive = HTTPField.Name("Keep-Alive") { headers[keepAlive] = "timeout=5" }
            if let end = HTTPField.Name("X-End-To-End") { headers[end] = "kept" }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "hop")))
        }
        router.get("download/:bytes") { _, context in
            let total = context.parameters.get("bytes", as: Int.self) ?? 0
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: ResponseBody { writer in
                    var remaining = total
                    let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 65536)
                    while remaining > 0 {
                        let size = min(remaining, 65536)
                        try await writer.write(chunk.getSlice(at: 0, length: size) ?? ByteBuffer())
                        remaining -= size
                    }
                    try await writer.finish(nil)
                })
        }
        router.post("early") { _, _ in
            // Answers before reading the body (Hummingbird drains it afterwards, as a correct
            // HTTP/1.1 server reading on does).
            Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "early")))
        }
        router.get("drip/:ms") { _, context in
            // The head at once, then four 1000-byte parts spread over `ms` (a streamed body).
            let milliseconds = context.parameters.get("ms", as: Int.self) ?? 0
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: ResponseBody { writer in
                    for _ in 0..<4 {
                        try await Task.sleep(for: .milliseconds(milliseconds / 4))
                        try await writer.write(ByteBuffer(repeating: UInt8(ascii: "d"), count: 1000))
                    }
                    try await writer.finish(nil)
                })
        }
        router.get("stall/:bytes") { _, context in
            let bytes = context.parameters.get("bytes", as: Int.self) ?? 1
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(repeating: UInt8(ascii: "s"), count: bytes))
                    try await Task.sleep(for: .seconds(5))
                    try await writer.finish(nil)
                })
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "echo-upstream"),
            logger: logger)
    }

    static func echo(_ request: Request, peer: Int) async throws -> Response {
        var hasher = SHA256()
        var length = 0
        for try await buffer in request.body {
            length += buffer.readableBytes
            hasher.update(data: Array(buffer.readableBytesView))
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        let headers = request.headers.map { "[\(quote($0.name.canonicalName)),\(quote($0.value))]" }.joined(
            separator: ",")
        let body = """
            {"method":\(quote(request.method.rawValue)),"path":\(quote(request.uri.path)),"query":\(quote(request.uri.query ?? "")),\
            "headers":[\(headers)],"bodyLength":\(length),"bodySHA256":\(quote(digest)),"peerPort":\(peer)}
            """
        return Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func quote(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// The JSON ``EchoUpstream`` answers with, decoded.
public struct EchoedRequest: Decodable, Sendable {
    /// Method seen upstream.
    public var method: String
    /// Path seen upstream.
    public var path: String
    /// Query seen upstream.
    public var query: String
    /// Headers seen upstream (lower-cased names).
    public var headers: [[String]]
    /// Body length.
    public var bodyLength: Int
    /// Body SHA-256, hex.
    public var bodySHA256: String
    /// The proxy's source port as the upstream saw it (one port = one connection).
    public var peerPort: Int

    /// Decodes an echo response body.
    public init(json: String) throws { self = try JSONDecoder().decode(EchoedRequest.self, from: Data(json.utf8)) }

    /// Every value of a header.
    public func values(_ name: String) -> [String] {
        headers.filter { $0.first == name.lowercased() }.compactMap { $0.last }
    }
}

/// The echo upstream's context: remembers the peer's port, so tests can count connections.
struct EchoContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let peerPort: Int

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerPort = source.channel.remoteAddress?.port ?? 0
    }
}
