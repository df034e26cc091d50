import BFFCore
import BFFForwarder
import NIOCore
import Synchronization

/// The frontends whose API calls a server's event-loop handler decides: each request goes to
/// the frontend ``FrontendSelector`` picks by its `Host` and path (with none, the router answers).
/// The set can be replaced while the server runs (a configuration reload); a call keeps the
/// frontend it was decided with.
public final class APICallFrontends: Sendable {
    struct Table: Sendable {
        let selector: FrontendSelector
        let settings: [APICallSettings]
    }

    private let table: Mutex<Table>
    let forwarder: NIOUpstream
    /// Keep-alive connections with nothing in flight are closed after this long (server-wide).
    let idleTimeout: TimeAmount?
    /// A client that takes nothing of a response for this long is disconnected (both paths).
    let sendTimeout: TimeAmount

    /// The handler's frontends: each BFF with the requests it serves, forwarding through `forwarder`.
    public init(_ frontends: [(match: FrontendMatch, bff: BFF)], forwarder: NIOUpstream, idleTimeout: TimeAmount?) {
        self.forwarder = forwarder
        self.idleTimeout = idleTimeout
        self.sendTimeout = idleTimeout ?? .seconds(60)
        self.table = Mutex(Self.table(frontends, forwarder: forwarder))
    }

    /// One BFF serving every request.
    public convenience init(bff: BFF, forwarder: NIOUpstream, idleTimeout: TimeAmount?) {
        self.init([(FrontendMatch(), bff)], forwarder: forwarder, idleTimeout: idleTimeout)
    }

    /// Serves the next calls with `frontends` (calls already decided finish on the old ones).
    public func replace(_ frontends: [(match: FrontendMatch, bff: BFF)]) {
        let new = Self.table(frontends, forwarder: forwarder)
        table.withLock { $0 = new }
    }

    /// The settings of the frontend that serves a request to `host` for `path`; nil for none.
    func settings(host: String?, path: Substring) -> APICallSettings? {
        let table = table.withLock { $0 }
        return table.selector.select(host: host, path: path).map { table.settings[$0] }
    }

    private static func table(_ frontends: [(match: FrontendMatch, bff: BFF)], forwarder: NIOUpstream) -> Table {
        Table(
            selector: FrontendSelector(frontends.map(\.match)),
            settings: frontends.map { APICallSettings(bff: $0.bff, forwarder: forwarder) })
    }
}
