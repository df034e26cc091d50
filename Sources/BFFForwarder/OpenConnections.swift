import NIOCore
import Synchronization

/// Open connections, so a shutdown past its grace period can close them (SPEC §11.1). The server
/// adds ``tracker()`` to every client connection's pipeline; the forwarder registers its upstream
/// connections. A channel leaves the set when it closes.
public final class OpenConnections: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// An empty set.
    public init() {}

    /// Adds `channel` until it closes.
    public func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in self.channels.withLock { $0[id] = nil } }
    }

    /// Connections open now.
    public var count: Int { channels.withLock { $0.count } }

    /// Closes every connection (in-flight requests on them fail; their tasks end).
    public func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }

    /// A handler that registers its connection when added to a pipeline. It stays registered after
    /// the handler is removed (a WebSocket upgrade replaces the HTTP handlers), until it closes.
    public func tracker() -> any RemovableChannelHandler { Tracker(connections: self) }

    final class Tracker: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        let connections: OpenConnections
        init(connections: OpenConnections) { self.connections = connections }
        func handlerAdded(context: ChannelHandlerContext) { connections.add(context.channel) }
    }
}
