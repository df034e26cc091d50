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
    let settings: APICallSettings

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
            try pipeline.addHandler(APICallHandler(settings: settings))
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
        let settings = APICallSettings(bff: self, forwarder: forwarder, idleTimeout: configuration.idleTimeout)
        return HTTPServerBuilder { responder in
            APIHTTP1Channel(
                inner: HTTP1Channel(responder: responder, configuration: configuration), settings: settings)
        }
    }
}
