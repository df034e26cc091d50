import AsyncHTTPClient
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Tracing

/// Where and how finished spans go: OTLP/HTTP with protobuf bodies.
struct OTLPExportSettings: Sendable {
    /// The full URL spans are posted to (`…/v1/traces`).
    var url: String
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`, e.g. a collector's API key).
    var headers: [(String, String)] = []
    /// One export's time limit (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    var timeout: Duration = .seconds(10)
    /// The longest a finished span waits before it is sent (`OTEL_BSP_SCHEDULE_DELAY`).
    var scheduleDelay: Duration = .seconds(5)
    /// Spans kept while waiting; more are dropped, counted and logged (`OTEL_BSP_MAX_QUEUE_SIZE`).
    var maxQueueSize = 2048
    /// Spans per request; a full batch is sent at once (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    var maxExportBatchSize = 512
    /// The resource's attributes (`service.name`, `OTEL_RESOURCE_ATTRIBUTES`, …).
    var resource: [(String, SpanAttribute)] = []
}

/// Buffers finished spans and posts them in batches: once a batch is full, every
/// `scheduleDelay`, on ``OTLPTracer/forceFlush()``, and once more when stopped. A span's end costs
/// one lock and an append; encoding and sending happen here, one request at a time. A failed
/// export is logged (never its headers) and its spans dropped, as OpenTelemetry's batch processor
/// does.
final class OTLPExporter: Sendable {
    let settings: OTLPExportSettings
    private let logger: Logger
    private let state = Mutex(Buffer())
    /// When the last warning was logged (one per 10 s at most; the rest are counted into it).
    private let lastWarning = Mutex<(at: ContinuousClock.Instant?, suppressed: Int)>((nil, 0))
    private let version: String

    struct Buffer {
        var spans: [FinishedSpan] = []
        var dropped = 0
        var flushRequested = false
    }

    init(settings: OTLPExportSettings, version: String, logger: Logger) {
        self.settings = settings
        self.version = version
        self.logger = logger
    }

    /// Takes a finished span (called where it ended); drops it when the queue is full.
    func append(_ span: FinishedSpan) {
        state.withLock { buffer in
            if buffer.spans.count >= settings.maxQueueSize {
                buffer.dropped += 1
            } else {
                buffer.spans.append(span)
            }
        }
    }

    /// Sends what is buffered at the next look (within 50 ms).
    func flushSoon() { state.withLock { $0.flushRequested = true } }

    /// Spans waiting to be sent (tests).
    var queued: Int { state.withLock { $0.spans.count } }
    /// The spans waiting to be sent (tests).
    var pending: [FinishedSpan] { state.withLock { $0.spans } }

    /// Exports until ``stop()``, then sends what is left (within 3 s) and returns. The gateway
    /// stops it after its public listener has drained, so the spans of the last requests go too.
    func run() async {
        // One run per exporter (its stop signal has one reader): a second call returns at once.
        guard !running.exchange(true, ordering: .relaxed) else { return }
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // A collector that refuses connections fails the export at once (AsyncHTTPClient would
        // otherwise retry until the export's deadline, holding every later batch and shutdown).
        configuration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.exportLoop(http: http) }  // justified: structured child, cancelled on stop()
            for await _ in stopSignal.stream {}  // until stop()
            group.cancelAll()  // an export in progress is cut short
        }
        // Whatever is left, once, within 3 s (a stalled collector must not hold the exit).
        var scratch = Scratch()
        _ = await send(take(all: true), http: http, timeout: min(settings.timeout, .seconds(3)), scratch: &scratch)
        try? await http.shutdown()
    }

    /// Ends ``run()``: the loop stops (cutting an export short) and the rest is sent.
    func stop() { stopSignal.continuation.finish() }

    private let stopSignal = AsyncStream<Void>.makeStream()
    private let running = Atomic(false)

    private func exportLoop(http: HTTPClient) async {
        // A look every 50 ms (or sooner with a shorter delay, but at least every 10 ms): a full
        // batch goes at once, the rest when it is `scheduleDelay` old.
        let look = max(min(settings.scheduleDelay, .milliseconds(50)), .milliseconds(10))
        var lastExport = ContinuousClock.now
        var busy = false
        var scratch = Scratch()
        while !Task.isCancelled {
            // After a full batch, look again at once: under load the queue refills while a batch
            // is being sent.
            if !busy { try? await Task.sleep(for: look) }
            if Task.isCancelled { return }
            let due = ContinuousClock.now - lastExport >= settings.scheduleDelay
            let batch = take(all: due)
            if batch.spans.isEmpty && batch.dropped == 0 {
                busy = false
                continue
            }
            // (Not after a failure: a collector that is down is not retried in a loop.)
            busy =
                await send(batch, http: http, timeout: settings.timeout, scratch: &scratch)
                && batch.spans.count >= settings.maxExportBatchSize
            if due || batch.flushed { lastExport = .now }
        }
    }

    /// Everything queued once a batch is full, or when `all` (or a flush was asked for); and the
    /// drop count.
    private func take(all: Bool) -> (spans: [FinishedSpan], dropped: Int, flushed: Bool) {
        state.withLock { buffer in
            let flushed = buffer.flushRequested
            var spans: [FinishedSpan] = []
            if all || flushed || buffer.spans.count >= settings.maxExportBatchSize { swap(&spans, &buffer.spans) }
            let dropped = buffer.dropped
            buffer.dropped = 0
            buffer.flushRequested = false
            return (spans, dropped, flushed)
        }
    }

    /// The buffers one export loop encodes into, reused from batch to batch: a batch of 512
    /// spans is about 100 KiB, and allocating that (twice) per batch cost more than encoding it.
    struct Scratch {
        var writer = ProtobufWriter()
        var body = ByteBuffer()
    }

    private func send(
        _ batch: (spans: [FinishedSpan], dropped: Int, flushed: Bool), http: HTTPClient, timeout: Duration,
        scratch: inout Scratch
    ) async -> Bool {
        if batch.dropped > 0 {
            warn(
                "Spans dropped: the export queue was full",
                [
                    "bff.dropped_spans": "\(batch.dropped)", "bff.queue_size": "\(settings.maxQueueSize)",
                    "bff.fix": "sample fewer traces (telemetry.sampleRatio) or raise OTEL_BSP_MAX_QUEUE_SIZE",
                ])
        }
        var start = 0
        var sent = true
        while start < batch.spans.count {
            let end = min(start + settings.maxExportBatchSize, batch.spans.count)
            sent = await post(batch.spans[start..<end], http: http, timeout: timeout, scratch: &scratch) && sent
            start = end
        }
        return sent
    }

    /// Posts one batch; whether the collector took it within `timeout` (head and body: a
    /// collector that answers slowly or drips its body is cut off; so is any post when the
    /// exporter stops).
    private func post(
        _ spans: ArraySlice<FinishedSpan>, http: HTTPClient, timeout: Duration, scratch: inout Scratch
    ) async -> Bool {
        OTLPEncoding.request(spans, resource: settings.resource, scope: ("swift-bff", version), into: &scratch.writer)
        scratch.body.clear()
        scratch.body.writeBytes(scratch.writer.bytes)
        let body = scratch.body
        let settings = self.settings
        let outcome: Result<UInt, any Error>? = await withTaskGroup(of: Result<UInt, any Error>?.self) { group in
            group.addTask {  // justified: structured child of this group: the post (its deadline is next)
                var request = HTTPClientRequest(url: settings.url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/x-protobuf")
                for (name, value) in settings.headers { request.headers.add(name: name, value: value) }
                request.body = .bytes(body)
                do {
                    let response = try await http.execute(
                        request, timeout: .milliseconds(Int64(timeout / .milliseconds(1))))
                    _ = try await response.body.collect(upTo: 1 << 20)
                    return .success(response.status.code)
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {  // justified: structured child of this group, the post's deadline
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch outcome {
        case .success(let status) where (200..<300).contains(status):
            return true
        case .success(let status):
            warn("OTLP export refused", ["http.response.status_code": "\(status)", "bff.spans": "\(spans.count)"])
        case .failure(let error):
            warn("OTLP export failed", ["error.type": "\(type(of: error))", "bff.spans": "\(spans.count)"])
        case nil:
            warn("OTLP export failed", ["error.type": "timeout", "bff.spans": "\(spans.count)"])
        }
        return false
    }

    /// A warning, unless one was logged in the last 10 s (then it is counted into the next one).
    private func warn(_ message: Logger.Message, _ metadata: Logger.Metadata) {
        let suppressed: Int? = lastWarning.withLock { last in
            let now = ContinuousClock.now
            if let at = last.at, now - at < .seconds(10) {
                last.suppressed += 1
                return nil
            }
            defer { last = (now, 0) }
            return last.suppressed
        }
        guard let suppressed else { return }
        var metadata = metadata
        if suppressed > 0 { metadata["bff.warnings_suppressed"] = "\(suppressed)" }
        logger.warning(message, metadata: metadata)
    }
}

/// The exporter as a service of its own: stopped at graceful shutdown (tests, and any process
/// that has no listener to drain first).
struct OTLPExporterService: Service {
    let exporter: OTLPExporter

    func run() async throws {
        await withGracefulShutdownHandler {
            await exporter.run()
        } onGracefulShutdown: {
            exporter.stop()
        }
    }
}
