import NIOCore
import NIOHTTP1

/// One request sent on an idle pooled connection without leaving the event loop (the gateway's
/// fast path). Created, used and finished on that event loop only.
public final class UpstreamExchange {
    let connection: UpstreamConnection
    let pool: UpstreamConnectionPool
    private var finished = false

    init(connection: UpstreamConnection, pool: UpstreamConnectionPool) {
        self.connection = connection
        self.pool = pool
    }

    /// Resumes reading the upstream after the consumer returned false from `push`.
    public func resume() { connection.handler.value.resume() }

    /// After `.end`: returns the connection to the pool (kept if the upstream allows keep-alive).
    public func complete() {
        guard !finished else { return }
        finished = true
        pool.release(connection, reusable: connection.handler.value.reusable && connection.channel.isActive)
    }

    /// After `.failed`, or when the client went away mid-response: the connection is closed.
    public func abandon() {
        guard !finished else { return }
        finished = true
        connection.handler.value.abandon()
        pool.release(connection, reusable: false)
    }
}

extension NIOUpstream {
    /// Sends a body-less request on an idle keep-alive connection to `target` from `eventLoop`'s
    /// pool, if there is one, and streams the response into `consumer` — all on `eventLoop`, which
    /// must be the current one. `head` is sent as is (it carries `Host`). Returns nil (nothing
    /// sent) when no idle connection is at hand or the upstream is not plain http; the caller then
    /// takes the normal path.
    public func exchangeIfIdle(
        _ head: HTTPRequestHead, to target: Target, timeout: TimeAmount, eventLoop: any EventLoop,
        consumer: any UpstreamResponseConsumer
    ) -> UpstreamExchange? {
        eventLoop.preconditionInEventLoop()
        guard !target.tls else { return nil }
        let pool = pool(host: target.host, port: target.port, eventLoop: eventLoop)
        guard let connection = pool.leaseIdle() else { return nil }
        guard connection.channel.eventLoop === eventLoop else {
            pool.release(connection, reusable: true)
            return nil
        }
        connection.handler.value.begin(stream: consumer, head: head, hasBody: false, timeout: timeout)
        fastExchanges.add(1, ordering: .relaxed)
        return UpstreamExchange(connection: connection, pool: pool)
    }
}
