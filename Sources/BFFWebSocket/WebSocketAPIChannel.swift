import BFFForwarder
import BFFHummingbird
import HTTPTypes
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

/// Hummingbird's WebSocket-upgrade channel with the API pipeline's event-loop handler: API calls
/// on a gateway that also has WebSocket routes take the same path as on one without.
///
/// The upgrade handler decides on a connection's first request. The API handler sits right
/// behind it, so it sees nothing until that decision: an upgrade removes it (in
/// ``BFFWebSocketBridge/shouldUpgrade(_:channel:logger:)``, before the switch to WebSocket
/// frames), and a connection that stays HTTP gets Hummingbird's codec behind it, exactly as in
/// ``APIHTTP1Channel``.
public struct WebSocketAPIChannel: ServerChildChannel {
    let inner: HTTP1WebSocketUpgradeChannel
    /// The API pipeline's handlers; nil when API calls go through the router (then only
    /// ``PreCodecErrorHandler`` sits there).
    let apiCalls: APICallHandlers?
    /// The connection's idle timeout (kept by the API handler, or before the first request by
    /// ``PreCodecErrorHandler``).
    let idleTimeout: TimeAmount?

    public typealias Value = HTTP1WebSocketUpgradeChannel.Value

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let apiCalls = self.apiCalls
        let idleTimeout = self.idleTimeout
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            // Appended now, so it comes before what the not-upgraded path appends later
            // (Hummingbird's codec, the connection handlers).
            try channel.pipeline.syncOperations.addHandler(
                apiCalls?.make() ?? PreCodecErrorHandler(idleTimeout: idleTimeout), name: APICallHandlers.handlerName)
            return value
        }
    }

    public func handle(value: Value, logger: Logger) async {
        // A connection that ends before its first request was decided (closed while idle, reset,
        // half a head, a malformed request the API handler answered 400) fails the upgrade
        // future: routine, but Hummingbird logs it as an error. Logged at debug instead.
        var quieter = logger
        quieter.handler = UpgradeFailureLogHandler(base: logger.handler)
        await inner.handle(value: value, logger: quieter)
    }
}

extension BFFWebSocketBridge {
    /// An HTTP/1.1 server with this bridge's WebSocket routes whose API calls are all decided and
    /// forwarded on the event loop (the API handler keeps the idle timeout of `configuration`).
    /// With `forwarder` nil, API calls go through the router's middleware.
    public func server(configuration: HTTP1Channel.Configuration, bff: BFF, forwarder: NIOUpstream?)
        -> HTTPServerBuilder
    {
        Self.server(
            configuration: configuration,
            apiCalls: forwarder.map { bff.apiCallHandlers(forwarder: $0, idleTimeout: configuration.idleTimeout) },
            shouldUpgrade: self.shouldUpgrade)
    }

    /// An HTTP/1.1 server whose handshakes are decided by `shouldUpgrade` (one bridge's, or one
    /// that picks a frontend's bridge per request) and whose API calls go to `apiCalls` on the
    /// event loop (nil: through the router's middleware).
    public static func server(
        configuration: HTTP1Channel.Configuration, apiCalls: APICallHandlers?,
        shouldUpgrade:
            @escaping @Sendable (HTTPRequest, any Channel, Logger) async -> ShouldUpgradeResult<
                WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
            >
    ) -> HTTPServerBuilder {
        let http1 = {
            var http1 = configuration
            if apiCalls != nil { http1.idleTimeout = nil }  // the API handler keeps it
            return http1
        }()
        return HTTPServerBuilder { responder in
            WebSocketAPIChannel(
                inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, configuration: .init(http1: http1), shouldUpgrade: shouldUpgrade),
                apiCalls: apiCalls, idleTimeout: configuration.idleTimeout)
        }
    }
}

/// For a gateway whose API calls go through the router (`BFF_API_FAST_PATH=false`): what the API
/// handler does for errors raised before any codec is behind it (a malformed head, an upgrade
/// request NIO's upgrader rejects, such as one with a body) — answer 400 and close, instead of
/// leaving the connection open with nobody to drive it. Inert once Hummingbird's codec is there.
///
/// It also keeps the idle timeout until the connection's first bytes arrive (Hummingbird's own
/// connection handler, which keeps it afterwards, is only installed after the upgrade decision):
/// a connection that never sends anything is closed.
final class PreCodecErrorHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    let idleTimeout: TimeAmount?
    private var idleCheck: Scheduled<Void>?

    init(idleTimeout: TimeAmount?) { self.idleTimeout = idleTimeout }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let idleTimeout else { return }
        let channel = context.channel
        idleCheck = context.eventLoop.scheduleTask(in: idleTimeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        idleCheck?.cancel()  // a request is under way: Hummingbird's handler keeps the timeout from here
        idleCheck = nil
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        APICallHandlers.answerEarlyError(error, context: context)
    }
}

/// Passes every log line on, except Hummingbird's "Error handling upgrade result" (a connection
/// that ended before its first request was decided), which goes on at debug level.
struct UpgradeFailureLogHandler: LogHandler {
    var base: any LogHandler
    static let message: Logger.Message = "Error handling upgrade result"

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.level == .error, event.message == Self.message else {
            base.log(event: event)
            return
        }
        guard base.logLevel <= .debug else { return }
        var quiet = event
        quiet.level = .debug
        quiet.message = "connection ended before its first request"
        base.log(event: quiet)
    }
}
