import BFFForwarder
import NIOCore
import NIOHTTP1

/// One fast exchange: receives the upstream response on the event loop and writes it back.
final class FastExchange: UpstreamResponseConsumer {
    /// Weak: the upstream connection may outlive the client's channel.
    weak var handler: APIFastPathHandler?
    let request: HTTPRequestHead
    /// The route's configured path (logs).
    let api: String
    var upstream: UpstreamExchange?
    private var paused = false
    private var wroteHead = false

    init(handler: APIFastPathHandler, request: HTTPRequestHead, api: String) {
        self.handler = handler
        self.request = request
        self.api = api
    }

    func push(_ event: UpstreamEvent) -> Bool {
        guard let handler else {
            upstream?.abandon()
            return true
        }
        switch event {
        case .head(let head):
            wroteHead = true
            handler.fastPath.observe(request, api: api, status: Int(head.status.code))
            handler.write(.head(handler.fastPath.browserHead(head)))
        case .body(let buffer):
            handler.write(.body(.byteBuffer(buffer)))
            if !handler.isWritable {
                // Flushing may drain the socket at once (and report writability synchronously,
                // before the upstream side could pause): only pause if it is still full after it.
                handler.flush()
                if !handler.isWritable {
                    paused = true  // resumed on writability; the handler's send check bounds the wait
                    return false
                }
            }
        case .end:
            handler.write(.end(nil))
            handler.flush()
            upstream?.complete()
            handler.finished(self)
        case .failed(let error):
            // May arrive while the exchange is still being set up (a pooled connection the upstream
            // had closed): act once the current call stack has unwound and `upstream` is set.
            let wroteHead = self.wroteHead
            handler.deferOnLoop { [self] in
                upstream?.abandon()
                guard let handler = self.handler else { return }
                if wroteHead {
                    RemoteAPIProxy.logUpstreamFailure(
                        error, api: api, midResponse: true, logger: handler.fastPath.logger)
                    handler.abort(self)
                } else if error.isTimeout {
                    RemoteAPIProxy.logUpstreamFailure(error, api: api, logger: handler.fastPath.logger)
                    handler.fastPath.observe(request, api: api, status: error.problem.status)
                    handler.answer(self, problem: error.problem)  // retrying would double the wait
                } else {
                    handler.fallBack(self)  // the router retries a stale connection once, or answers 502
                }
            }
        }
        return true
    }

    /// Flushes what the upstream's last read produced (streamed responses reach the client as
    /// they come, not only at their end).
    func readComplete() {
        if wroteHead { handler?.flush() }
    }

    /// The client can take more.
    func resumeIfPaused() {
        guard paused else { return }
        paused = false
        upstream?.resume()
    }

    /// The client went away: the upstream connection is closed, not reused.
    func stop() {
        paused = false
        upstream?.abandon()
    }
}
