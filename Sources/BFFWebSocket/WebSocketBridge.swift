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

    /// Bridges `bff`'s `websocket: true` routes.
    public init(bff: BFF) { self.routes = WebSocketRoutes(bff: bff) }

    /// Whether the BFF has WebSocket routes at all (otherwise serve plain HTTP/1.1).
    public var isEmpty: Bool { routes.isEmpty }

    /// The `shouldUpgrade` function for `HTTPServerBuilder.http1WebSocketUpgrade`.
    public func shouldUpgrade(_ head: HTTPRequest, channel: any Channel, logger: Logger) async
        -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>>
    {
        let remote = channel.remoteAddress?.ipAddress
        switch await routes.decision(for: head, remoteAddress: remote, logger: logger) {
        case .notAWebSocketRoute, .refused:
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
