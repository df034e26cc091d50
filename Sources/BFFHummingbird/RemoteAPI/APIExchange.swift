import BFFCore
import BFFForwarder
import Logging
import NIOCore
import NIOHTTP1
import Tracing

/// One API call forwarded by ``APICallHandler``: obtains the upstream connection, receives the
/// response on the event loop and writes it back with back-pressure.
final class APIExchange: UpstreamResponseConsumer {
    /// Weak: the upstream connection may outlive the client's channel.
    weak var handler: APICallHandler?
    let request: HTTPRequestHead
    let settings: APICallSettings
    let started = ContinuousClock.now
    /// When the first attempt asked for an upstream connection.
    var upstreamStarted: ContinuousClock.Instant?
    var plan: APICallPlan?
    var upstream: UpstreamExchange?
    /// The call's server span (with a tracer), ended when its response has ended.
    var span: CallSpan?
    /// Whether work ran inside ``span`` (a store read, a refresh): its spans have it as parent,
    /// so it must be exported even when the router's adapter takes the call over.
    var spanHasChildren = false
    /// The upstream call's client span, ended at the upstream response's end or failure.
    private var upstreamSpan: CallSpan?
    /// The upstream's status, once its head was passed on.
    private var headStatus: Int?
    /// Body bytes passed on to the client.
    private var bodyBytes = 0
    /// The call was reported (``APICallSettings/observe(_:api:status:fromUpstream:bytes:complete:)``).
    private var reported = false
    /// The upstream failed after its head: the abort that follows is not the client's doing.
    private var failedMidResponse = false
    private var attempts = 0
    /// Sent once more for an upstream's DPoP nonce (at most once).
    private var retriedWithNonce = false
    /// The handler was told the exchange started (once, whichever attempt got a connection).
    private var announced = false
    private var paused = false
    private var wroteHead = false
    /// The connection closes after this response (see ``APICallSettings/browserHead(_:request:cookies:)``).
    private(set) var closesConnection = false
    private var stopped = false

    init(handler: APICallHandler, request: HTTPRequestHead, settings: APICallSettings) {
        self.handler = handler
        self.request = request
        self.settings = settings
    }

    /// Obtains a connection and sends the head (the body follows through the handler).
    func connect(fresh: Bool, eventLoop: any EventLoop) {
        guard let plan else { return }
        attempts += 1
        if upstreamStarted == nil { upstreamStarted = .now }
        var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: plan.pathAndQuery)
        head.headers.reserveCapacity(plan.forwardedFields.count + plan.gatewayFields.count + 2)
        head.headers.add(name: "Host", value: plan.upstream.hostHeader)
        for field in plan.forwardedFields { head.headers.add(name: field.name, value: field.value) }
        for field in plan.gatewayFields { head.headers.add(name: field.name, value: field.value) }
        switch plan.body {
        case .none: break
        case .length(let length): head.headers.add(name: "Content-Length", value: String(length))
        case .chunked: head.headers.add(name: "Transfer-Encoding", value: "chunked")
        }
        if let span {
            if upstreamSpan == nil {
                let client = span.child("upstream " + plan.method, ofKind: .client)
                client.record {
                    $0.method = plan.method
                    $0.api = plan.api
                }
                upstreamSpan = client
            }
            upstreamSpan?.inject(into: &head.headers, using: NIOHeadersInjector())
        }
        settings.forwarder.exchange(
            head, host: plan.upstream.host, port: plan.upstream.port, hasBody: plan.body.hasBody,
            timeout: TimeAmount(plan.timeout), eventLoop: eventLoop, fresh: fresh, consumer: self
        ) { [self] result in
            switch result {
            case .success(let exchange):
                guard !stopped, let handler, handler.isCurrent(self) else {
                    exchange.abandon()
                    return
                }
                upstream = exchange
                if !announced {
                    announced = true
                    handler.exchangeStarted(self)
                }
            case .failure(let error):
                fail(error)
            }
        }
    }

    func push(_ event: UpstreamEvent) -> Bool {
        guard let handler, !stopped else {
            upstream?.abandon()
            return true
        }
        switch event {
        case .head(let head):
            if let plan, answered(challengeIn: head, plan: plan, handler: handler) { return true }
            wroteHead = true
            headStatus = Int(head.status.code)
            upstreamSpan?.recordStatus(Int(head.status.code))
            let (browserHead, closes) = settings.browserHead(head, request: request, cookies: plan?.cookies ?? [])
            closesConnection = closes
            handler.write(.head(browserHead))
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
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
            upstream?.complete()
            upstreamSpan?.end()
            upstreamSpan = nil
            report(complete: true)
            handler.responseEnded(self)  // writes the end
        case .failed(let error):
            // May arrive while the exchange is being set up (a pooled connection the upstream had
            // closed): act once the current call stack has unwound and `upstream` is set.
            handler.deferOnLoop { [self] in fail(error) }
        }
        return true
    }

    /// An upstream `401` challenge (``UpstreamChallenge``), handled before any byte of it reaches
    /// the browser: a step-up problem instead of the upstream's answer, or — once, for an
    /// idempotent call without a body — the call sent again with a proof carrying the upstream's
    /// DPoP nonce. The upstream connection is closed either way (its body is not wanted).
    private func answered(challengeIn head: HTTPResponseHead, plan: APICallPlan, handler: APICallHandler) -> Bool {
        guard head.status.code == 401,
            let challenge = settings.planner.challenge(
                in: plan, status: 401, fields: head.headers, name: { $0.name }, value: { $0.value })
        else { return false }
        switch challenge {
        case .stepUp(let problem):
            upstream?.abandon()
            upstream = nil
            upstreamSpan?.recordStatus(401)
            upstreamSpan?.end()
            upstreamSpan = nil
            handler.failed(self, problem: problem)
            return true
        case .dpopNonce:
            guard !retriedWithNonce, !plan.body.hasBody, APIExchange.idempotent.contains(plan.method),
                let resigned = settings.planner.resigned(plan), let loop = handler.eventLoop
            else { return false }
            retriedWithNonce = true
            upstream?.abandon()
            upstream = nil
            self.plan = resigned
            connect(fresh: false, eventLoop: loop)
            return true
        }
    }

    /// Methods a retry may send twice (RFC 9110 §9.2.2).
    static let idempotent: Set<String> = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]

    /// A failure of the exchange (before or after the head).
    private func fail(_ error: UpstreamError) {
        upstream?.abandon()
        upstream = nil
        if let upstreamSpan {
            self.upstreamSpan = nil
            upstreamSpan.record { $0.errorType = error.description }
            upstreamSpan.end()
        }
        guard !stopped, let handler, handler.isCurrent(self), let plan else { return }
        if wroteHead {
            failedMidResponse = true
            APICallLog.upstreamFailure(
                error, api: plan.api, midResponse: true, logger: settings.logger, metrics: settings.reporter.metrics)
            handler.abort(self)
            return
        }
        // A connection the upstream closed while it sat idle: one retry on a fresh one, for an
        // idempotent call without a body (nothing of it was consumed).
        if error == .unavailable, attempts == 1, !plan.body.hasBody,
            ["GET", "HEAD", "OPTIONS"].contains(plan.method), let loop = handler.eventLoop
        {
            // A DPoP proof is never sent twice (the upstream may have seen the first): a new one.
            if let resigned = settings.planner.resigned(plan) { self.plan = resigned }
            connect(fresh: true, eventLoop: loop)
            return
        }
        APICallLog.upstreamFailure(error, api: plan.api, logger: settings.logger, metrics: settings.reporter.metrics)
        handler.failed(self, problem: error.problem)
    }

    /// Flushes what the upstream's last read produced (streamed responses reach the client as
    /// they come, not only at their end).
    func readComplete() {
        if wroteHead { handler?.flushSoon() }
    }

    func upstreamBecameWritable() {
        handler?.uploadCanResume(self)
    }

    /// The client can take more.
    func resumeIfPaused() {
        guard paused else { return }
        paused = false
        upstream?.resume()
    }

    /// Reports the call once: its forwarded status, or 499 when the client left before the head.
    private func report(complete: Bool) {
        guard !reported else { return }
        reported = true
        settings.observe(
            self, api: plan?.api ?? "", status: headStatus ?? 499, fromUpstream: headStatus != nil, bytes: bodyBytes,
            complete: complete)
    }

    /// The exchange ends unfinished (the client went away, or the upstream failed mid-body): the
    /// upstream connection is closed, not reused, and the call is reported as cut short.
    func stop() {
        stopped = true
        paused = false
        upstream?.abandon()
        upstream = nil
        if !failedMidResponse {
            for span in [upstreamSpan, span].compactMap({ $0 }) { span.record { $0.clientGone = true } }
        }
        upstreamSpan?.end()
        upstreamSpan = nil
        report(complete: false)  // ends the server span
    }
}

extension String {
    /// Lower-cased, without allocating when there is nothing to change (header names mostly).
    var asciiLowercased: String {
        utf8.contains { $0 >= 0x41 && $0 <= 0x5A } ? lowercased() : self
    }
}
