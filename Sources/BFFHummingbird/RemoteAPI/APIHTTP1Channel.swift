import BFFForwarder
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1.1 channel with the API handler right after NIO's HTTP codec. Use it
/// through ``BFF/http1ServerWithAPIHandler(configuration:forwarder:)``.
public struct APIHTTP1Channel: ServerChildChannel {
    let inner: HTTP1Channel
    let frontends: APICallFrontends

    public typealias Value = HTTP1Channel.Value

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // As HTTP1Channel.setup, with the API handler between the two codecs and the idle timeout
        // kept by it (Hummingbird's handler cannot see API calls).
        channel.eventLoop.makeCompletedFuture {
            let decoder = inner.configuration.httpDecoder
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = decoder.maxHeaderFieldSize
            limits.maxHeaderListSize = decoder.maxHeaderListSize
            limits.maxHeaderFieldCount = decoder.maxHeaderFieldCount
            let pipeline = channel.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try pipeline.addHandler(APICallHandler(frontends: frontends), name: APICallHandlers.handlerName)
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandlers(inner.configuration.additionalChannelHandlers())
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

extension BFF {
    /// An HTTP/1.1 server whose API calls are all decided and forwarded on the event loop (see
    /// ``APICallHandler``); every other request is served by the router as usual.
    public func http1ServerWithAPIHandler(configuration: HTTP1Channel.Configuration, forwarder: NIOUpstream)
        -> HTTPServerBuilder
    {
        APICallHandlers.http1Server(
            configuration: configuration,
            frontends: APICallFrontends(bff: self, forwarder: forwarder, idleTimeout: configuration.idleTimeout))
    }
}

/// Makes the API pipeline's channel handler for an HTTP/1.1 server pipeline that is not
/// ``APIHTTP1Channel`` (the gateway's WebSocket-capable channel): one handler per connection,
/// placed right after NIO's HTTP/1.1 server codec (`HTTPServerRequestPart` in,
/// `HTTPServerResponsePart` out) and before Hummingbird's `HTTP1ToHTTPServerCodec`. It takes
/// every API call and keeps the connection's idle timeout, so give Hummingbird's own connection
/// handler no idle timeout.
public struct APICallHandlers: Sendable {
    /// The handler's name in the pipeline (to remove it when the connection stops speaking HTTP).
    public static let handlerName = "bff.api-calls"
    let frontends: APICallFrontends

    /// Handlers deciding the calls of `frontends`.
    public init(frontends: APICallFrontends) {
        self.frontends = frontends
    }

    /// A new handler for one connection.
    public func make() -> any RemovableChannelHandler {
        APICallHandler(frontends: frontends)
    }

    /// An HTTP/1.1 server whose API calls (of every frontend in `frontends`) are all decided and
    /// forwarded on the event loop; every other request is served by the responder as usual.
    public static func http1Server(configuration: HTTP1Channel.Configuration, frontends: APICallFrontends)
        -> HTTPServerBuilder
    {
        HTTPServerBuilder { responder in
            APIHTTP1Channel(
                inner: HTTP1Channel(responder: responder, configuration: configuration), frontends: frontends)
        }
    }

    /// An error raised before a connection's first request completed: Hummingbird's codec, when
    /// it is installed behind, answers it (400, close); otherwise (behind the WebSocket upgrade
    /// handler, before the upgrade decision) nobody would, and the connection would stay open for
    /// ever — so 400 and close here.
    public static func answerEarlyError(_ error: any Error, context: ChannelHandlerContext) {
        if (try? context.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self)) != nil {
            context.fireErrorCaught(error)
            return
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        context.write(
            NIOAny(
                HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))),
            promise: nil)
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

extension BFF {
    /// The API pipeline's channel handlers for a custom HTTP/1.1 server pipeline (see
    /// ``APICallHandlers``).
    public func apiCallHandlers(forwarder: NIOUpstream, idleTimeout: TimeAmount?) -> APICallHandlers {
        APICallHandlers(frontends: APICallFrontends(bff: self, forwarder: forwarder, idleTimeout: idleTimeout))
    }
}
