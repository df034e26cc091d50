import NIOCore
import NIOHTTP1

/// One request sent on an idle pooled connection without leaving the event loop (the gateway's
/// fast path). Created, used and finished on that event loop only.
public final class UpstreamExchange {
    let lease: UpstreamLease
    let generation: Int

    init(lease: UpstreamLease, generation: Int) {
        self.lease = lease
        self.generation = generation
    }

    /// Resumes reading the upstream after the consumer returned false from `push`.
    public func resume() { lease.connection.handler.value.resume(generation: generation) }

    /// After `.end`: returns the connection to the pool, kept only if the upstream allows
    /// keep-alive and the pool finds it clean.
    public func complete() { lease.end(reusable: true) }

    /// After `.failed`, or when the client went away mid-response: the connection is closed.
    public func abandon() {
        lease.connection.handler.value.abandon()
        lease.end(reusable: false)
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
        guard let lease = pool.leaseIdle() else { return nil }
        guard lease.connection.channel.eventLoop === eventLoop else {
            lease.end(reusable: true)
            return nil
        }
        let generation = lease.connection.handler.value.begin(
            stream: consumer, head: head, hasBody: false, timeout: timeout)
        fastExchanges.add(1, ordering: .relaxed)
        return UpstreamExchange(lease: lease, generation: generation)
    }
}
