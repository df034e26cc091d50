import BFFCore
import Hummingbird
import NIOCore

/// What the BFF keeps per request.
public struct BFFContextStorage: Sendable {
    /// The session loaded by ``BFFSessionMiddleware``, if any.
    public var session: LoadedSession?
    /// Whether the session middleware has run.
    public var sessionLoaded: Bool = false
    /// The request named a session but the store failed or did not answer in time: endpoints that
    /// need the session answer 503 `store-unavailable` (never "not logged in").
    public var storeUnavailable: Bool = false
    /// The peer's IP address (for `X-Forwarded-For`), when the transport knows it.
    public var remoteAddress: String?
    /// The inbound connection's event loop (the upstream connection is taken from its pool).
    public var eventLoop: (any EventLoop)?

    /// Empty storage.
    public init() {}
}

/// A request context that can carry the BFF session. Make your app's context conform, or use
/// ``BasicBFFRequestContext``.
public protocol BFFRequestContext: RequestContext {
    /// Per-request BFF state.
    var bff: BFFContextStorage { get set }
}

extension BFFRequestContext {
    /// The current user's session, if logged in.
    public var session: Session? { bff.session?.session }
}

/// The ready-made ``BFFRequestContext``.
public struct BasicBFFRequestContext: BFFRequestContext {
    /// Hummingbird's core storage.
    public var coreContext: CoreRequestContextStorage
    /// BFF storage.
    public var bff: BFFContextStorage

    /// Creates a context for a new request.
    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.bff = BFFContextStorage()
        self.bff.remoteAddress = source.channel.remoteAddress?.ipAddress
        self.bff.eventLoop = source.channel.eventLoop
    }
}
