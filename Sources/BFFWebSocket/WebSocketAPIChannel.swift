import BFFForwarder
import BFFHummingbird
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
    let apiCalls: APICallHandlers

    public typealias Value = HTTP1WebSocketUpgradeChannel.Value

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let apiCalls = self.apiCalls
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            // Appended now, so it comes before what the not-upgraded path appends later
            // (Hummingbird's codec, the connection handlers).
            try channel.pipeline.syncOperations.addHandler(apiCalls.make(), name: APICallHandlers.handlerName)
            return value
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

extension BFFWebSocketBridge {
    /// An HTTP/1.1 server with this bridge's WebSocket routes whose API calls are all decided and
    /// forwarded on the event loop (the API handler keeps the idle timeout of `configuration`).
    public func server(configuration: HTTP1Channel.Configuration, bff: BFF, forwarder: NIOUpstream)
        -> HTTPServerBuilder
    {
        let apiCalls = bff.apiCallHandlers(forwarder: forwarder, idleTimeout: configuration.idleTimeout)
        let http1 = {
            var http1 = configuration
            http1.idleTimeout = nil
            return http1
        }()
        let shouldUpgrade = self.shouldUpgrade
        return HTTPServerBuilder { responder in
            WebSocketAPIChannel(
                inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, configuration: .init(http1: http1), shouldUpgrade: shouldUpgrade),
                apiCalls: apiCalls)
        }
    }
}
