import NIOCore
import NIOHTTP1

/// One request on a pooled connection, driven from the event loop it lives on (the gateway's API
/// path): the head is sent by ``NIOUpstream/exchange(_:host:port:hasBody:timeout:eventLoop:fresh:consumer:started:)``,
/// the body through ``write(_:)`` and ``end()``, the response arrives in the consumer. Used on
/// that event loop only.
public final class UpstreamExchange {
    let lease: UpstreamLease
    let generation: Int
    /// Whether the connection had served requests before (a failure before any response byte may
    /// then be a connection the upstream closed while idle: worth one retry on a fresh one).
    public let reused: Bool

    init(lease: UpstreamLease, generation: Int, reused: Bool) {
        self.lease = lease
        self.generation = generation
        self.reused = reused
    }

    /// Sends a part of the request body (not flushed: see ``flushSoon()``).
    public func write(_ buffer: ByteBuffer) {
        lease.connection.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
    }

    /// Flushes what ``write(_:)`` sent once the event loop has handled its ready sockets
    /// (``LoopFlushes``).
    public func flushSoon() { LoopFlushes.flushSoon(lease.connection.channel) }

    /// Sends the end of the request body (not flushed: see ``flushSoon()``).
    public func end() {
        lease.connection.channel.write(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// Whether the upstream socket takes more body now (else wait for the consumer's
    /// `upstreamBecameWritable()`).
    public var isWritable: Bool { lease.connection.channel.isWritable }

    /// Resumes reading the upstream after the consumer returned false from `push`.
    public func resume() { lease.connection.handler.value.resume(generation: generation) }

    /// After `.end`: returns the connection to the pool, kept only if the upstream allows
    /// keep-alive and the pool finds it clean.
    public func complete() { lease.end(reusable: true) }

    /// After `.failed`, or when the client went away: the connection is closed.
    public func abandon() {
        lease.connection.handler.value.abandon()
        lease.end(reusable: false)
    }
}

extension NIOUpstream {
    /// Starts `head` (which carries `Host`) on a connection to `host:port` from `eventLoop`'s pool,
    /// all on `eventLoop` (the current one): an idle connection is used at once; otherwise a new
    /// one is opened, or the next one returned is awaited (up to the wait timeout), and `started`
    /// runs on `eventLoop` once the head is written — or with the error. With a body the head is
    /// not flushed: the caller flushes it with the first part of the body (``UpstreamExchange/flushSoon()``). `fresh` skips idle
    /// connections (the retry after a stale one). The response streams into `consumer`.
    public func exchange(
        _ head: HTTPRequestHead, host: String, port: Int, hasBody: Bool, timeout: TimeAmount, eventLoop: any EventLoop,
        fresh: Bool = false, consumer: any UpstreamResponseConsumer,
        started: @escaping (Result<UpstreamExchange, UpstreamError>) -> Void
    ) {
        eventLoop.preconditionInEventLoop()
        let pool = pool(host: host, port: port, eventLoop: eventLoop)
        fastExchanges.add(1, ordering: .relaxed)
        func begin(_ lease: UpstreamLease, reused: Bool) {
            let generation = lease.connection.handler.value.begin(
                stream: consumer, head: head, hasBody: hasBody, timeout: timeout, flush: false)
            started(.success(UpstreamExchange(lease: lease, generation: generation, reused: reused)))
        }
        if !fresh, let lease = pool.leaseIdle() {
            if lease.connection.channel.eventLoop === eventLoop {
                begin(lease, reused: true)
                return
            }
            lease.end(reusable: true)
        }
        // Connecting or waiting needs a task; its result comes back on `eventLoop`. (NIO's
        // `makeFutureWithTask` owns the task; the pool bounds its wait, the connect timeout its
        // connect, so it always ends.)
        eventLoop.makeFutureWithTask {  // justified: NIO owns the task; the pool's wait and connect timeouts end it
            try await pool.lease(fresh: fresh)
        }.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let lease):
                guard lease.connection.channel.eventLoop === eventLoop else {
                    lease.end(reusable: false)
                    started(.failure(.unavailable))
                    return
                }
                begin(lease, reused: false)
            case .failure(let error):
                started(.failure(error as? UpstreamError ?? .unavailable))
            }
        }
    }
}
