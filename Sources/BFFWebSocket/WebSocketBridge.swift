import BFFCore
import BFFForwarder
import BFFHummingbird
import HTTPTypes
import HummingbirdCore
import HummingbirdWSClient
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL

/// WebSocket routes for a Hummingbird server: decides each handshake with ``WebSocketRoutes``
/// and bridges accepted ones to the upstream, message by message, both ways.
///
/// ```swift
/// let webSockets = BFFWebSocketBridge(bff: bff)
/// let server = HTTPServerBuilder.http1WebSocketUpgrade(shouldUpgrade: webSockets.shouldUpgrade)
/// ```
public struct BFFWebSocketBridge: Sendable {
    let routes: WebSocketRoutes
    /// Largest message relayed, in bytes (1 MiB).
    public var maxMessageSize: Int = 1 << 20
    /// How often a bridge opened on a session checks that the session is still current; an ended
    /// session's bridges close with 1008 within this plus one lookup (SPEC §11.1: within 2 s).
    public var sessionCheckInterval: Duration = .seconds(1)

    /// `static.devServer` (`http://127.0.0.1:5173`): a handshake on a path that is neither an API
    /// route nor the BFF's is bridged to it (a dev server's HMR socket), when its `Origin` is the
    /// gateway's public origin. Nil: such handshakes are declined.
    public var devServer: String?
    let bff: BFF

    /// Bridges `bff`'s `websocket: true` routes.
    public init(bff: BFF) {
        self.routes = WebSocketRoutes(bff: bff)
        self.bff = bff
    }

    /// Whether there is nothing to upgrade: no WebSocket route and no dev server (then serve
    /// plain HTTP/1.1).
    public var isEmpty: Bool { routes.isEmpty && devServer == nil }

    /// The `shouldUpgrade` function for `HTTPServerBuilder.http1WebSocketUpgrade`.
    public func shouldUpgrade(_ head: HTTPRequest, channel: any Channel, logger: Logger) async
        -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>>
    {
        let remote = channel.remoteAddress?.ipAddress
        switch await routes.decision(for: head, remoteAddress: remote, logger: logger) {
        case .notAWebSocketRoute:
            guard let upstream = devServerUpstream(head) else { return .dontUpgrade }
            try? await channel.pipeline.removeHandler(name: APICallHandlers.handlerName).get()
            let maxMessageSize = self.maxMessageSize
            return .upgrade(upstream.responseHeaders) { inbound, outbound, context in
                await Self.bridge(
                    upstream: upstream, inbound: inbound, outbound: outbound, maxMessageSize: maxMessageSize,
                    sessionCheckInterval: .seconds(1), logger: context.logger)
            }
        case .refused:
            // Not upgraded: the request goes on as HTTP and the route answers with its problem.
            return .dontUpgrade
        case .upgrade(let upstream):
            // The API pipeline's handler (``WebSocketAPIChannel``) has seen nothing of this
            // connection yet and must not see its WebSocket frames. (Absent in other pipelines.)
            try? await channel.pipeline.removeHandler(name: APICallHandlers.handlerName).get()
            let maxMessageSize = self.maxMessageSize
            let interval = self.sessionCheckInterval
            return .upgrade(upstream.responseHeaders) { inbound, outbound, context in
                await Self.bridge(
                    upstream: upstream, inbound: inbound, outbound: outbound, maxMessageSize: maxMessageSize,
                    sessionCheckInterval: interval, logger: context.logger)
            }
        }
    }

    /// The dev server's socket for a handshake that is not an API route's: nil when there is no
    /// dev server, the path is the BFF's, or the page is not the gateway's own (cross-site
    /// WebSocket hijacking). Sends no cookie or credential; passes the subprotocols (Vite's
    /// `vite-hmr`) and answers with the first one.
    func devServerUpstream(_ head: HTTPRequest) -> WebSocketUpstream? {
        guard let devServer, let target = head.path, target.hasPrefix("/"), !target.hasPrefix("//") else { return nil }
        let path = target.prefix { $0 != "?" }
        // API routes stay the gateway's (a handshake on a non-WebSocket route is declined), and
        // a target the HTTP path would refuse as an escape is not bridged either.
        guard !bff.planner.isAPIPath(path), Self.isPlainTarget(target) else { return nil }
        guard !bff.isOwnPath(path) else { return nil }
        let origins = head.headerFields[values: .origin]
        guard origins.count == 1, origins.first == bff.publicOrigin else { return nil }
        var base = devServer.hasSuffix("/") ? String(devServer.dropLast()) : devServer
        base = (base.hasPrefix("https://") ? "wss://" + base.dropFirst(8) : "ws://" + base.dropFirst(7))
        var headers = HTTPFields()
        var responseHeaders = HTTPFields()
        let protocols = head.headerFields[values: .secWebSocketProtocol]
            .flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        // RFC 6455 §4.1: each subprotocol is a token. (The first one is answered: Vite's client
        // offers exactly one, `vite-hmr`.)
        guard protocols.allSatisfy(Self.isToken) else { return nil }
        if !protocols.isEmpty {
            headers[.secWebSocketProtocol] = protocols.joined(separator: ", ")
            responseHeaders[.secWebSocketProtocol] = protocols[0]
        }
        return WebSocketUpstream(
            url: base + target, headers: headers, responseHeaders: responseHeaders, caFile: nil, route: "devServer",
            sessionIsCurrent: nil)
    }

    /// An RFC 9110 token (`tchar`s only, non-empty).
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (48...57).contains(byte)
                    || Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
            }
    }

    /// A target without dot segments, encoded dots or slashes, backslashes, fragments or control
    /// characters (the dev server gets it verbatim).
    static func isPlainTarget(_ target: String) -> Bool {
        let lowered = target.lowercased()
        for marker in ["/../", "/./", "%2e", "%2f", "%5c", "\\", "#", "%00"] where lowered.contains(marker) {
            return false
        }
        let path = lowered.prefix { $0 != "?" }
        if path.hasSuffix("/..") || path.hasSuffix("/.") { return false }
        return !target.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7F }
    }

    static func bridge(
        upstream: WebSocketUpstream, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        maxMessageSize: Int, sessionCheckInterval: Duration, logger: Logger
    ) async {
        var configuration = WebSocketClientConfiguration(maxFrameSize: maxMessageSize)
        configuration.additionalHeaders = upstream.headers
        var tls: TLSConfiguration?
        if upstream.url.hasPrefix("wss://") {
            var settings = TLSConfiguration.makeClientConfiguration()
            if let file = upstream.caFile {
                guard let certificates = try? TLSUpstreams.certificates(in: file) else {
                    try? await outbound.close(.unexpectedServerError, reason: "upstream unavailable")
                    return
                }
                settings.trustRoots = .certificates(certificates)
            }
            tls = settings
        }
        do {
            try await WebSocketClient.connect(
                url: upstream.url, configuration: configuration, tlsConfiguration: tls, logger: logger
            ) { upstreamInbound, upstreamOutbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // Browser → upstream; when the browser closes, close the upstream side too.
                    group.addTask {  // justified: structured child task of the group
                        for try await message in inbound.messages(maxSize: maxMessageSize) {
                            try await upstreamOutbound.write(Self.frame(message))
                        }
                        try await upstreamOutbound.close(.normalClosure, reason: nil)
                    }
                    // Upstream → browser.
                    group.addTask {  // justified: structured child task of the group
                        for try await message in upstreamInbound.messages(maxSize: maxMessageSize) {
                            try await outbound.write(Self.frame(message))
                        }
                    }
                    // The session it was opened on ends (any way): close with 1008.
                    if let isCurrent = upstream.sessionIsCurrent {
                        group.addTask {  // justified: structured child task of the group
                            while await isCurrent() {
                                try await Task.sleep(for: sessionCheckInterval)
                            }
                            logger.info(
                                "WebSocket closed: its session ended", metadata: ["bff.api": .string(upstream.route)])
                            try? await outbound.close(.policyViolation, reason: "session ended")
                            try? await upstreamOutbound.close(.normalClosure, reason: nil)
                        }
                    }
                    // Whichever side ends first ends the bridge.
                    try await group.next()
                    group.cancelAll()
                }
            }
            try? await outbound.close(.normalClosure, reason: nil)
        } catch {
            logger.warning(
                "WebSocket upstream failed", metadata: ["bff.api": .string(upstream.route), "bff.error": "\(error)"])
            try? await outbound.close(.unexpectedServerError, reason: "upstream unavailable")
        }
    }

    static func frame(_ message: WebSocketMessage) -> WebSocketOutboundWriter.OutboundFrame {
        switch message {
        case .text(let text): .text(text)
        case .binary(let buffer): .binary(buffer)
        }
    }
}
