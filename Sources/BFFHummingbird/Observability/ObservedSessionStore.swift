import BFFCore
import Synchronization
import Tracing

/// A session store measured and traced: every operation's duration goes to
/// `bff_session_store_duration_seconds{operation}` (failures to `bff_session_store_errors_total`),
/// and, inside a traced request, each operation is a client span of the request's span. Spans carry
/// the operation's name only: never a key, a session id or a record.
///
/// Lookups the store answers at once (``ImmediateSessionLookup``, from its cache) are passed
/// through unmeasured: they are not store round trips. ``exclusively(key:now:_:)`` is passed through
/// whole: its duration would include the token refresh it serialises; the reads and writes the
/// store makes inside it are its own.
final class ObservedSessionStore: SessionStore, ImmediateSessionLookup {
    let base: any SessionStore
    private let immediate: (any ImmediateSessionLookup)?
    let metrics: BFFMetrics
    let tracer: (any Tracer)?

    init(_ base: any SessionStore, metrics: BFFMetrics, tracer: (any Tracer)?) {
        self.base = base
        self.immediate = base as? any ImmediateSessionLookup
        self.metrics = metrics
        self.tracer = tracer
    }

    /// Runs one store operation, timed, in a span when a request's trace is current. An operation
    /// whose caller gives up (the store deadline cancels it) counts as failed at that moment: a
    /// driver that ignores cancellation must not keep an outage out of the error count, and its late
    /// answer is not counted again.
    private func observe<T>(_ operation: BFFMetrics.StoreOperation, _ body: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        let outcome = OnceFlag()
        let metrics = self.metrics
        @Sendable func record(failed: Bool) {
            guard outcome.claim() else { return }
            metrics.storeOperation(operation, duration: ContinuousClock.now - started, failed: failed)
        }
        do {
            let result = try await withTaskCancellationHandler {
                guard let tracer, ServiceContext.current != nil else { return try await body() }
                return try await tracer.withAnySpan("session_store " + operation.rawValue, ofKind: .client) { span in
                    span.attributes["db.operation.name"] = operation.rawValue
                    return try await body()
                }
            } onCancel: {
                record(failed: true)
            }
            record(failed: false)
            return result
        } catch {
            record(failed: true)
            throw error
        }
    }

    func findImmediately(key: [UInt8], now: UnixTime) -> ImmediateLookup {
        immediate?.findImmediately(key: key, now: now) ?? .unknown
    }

    func insert(_ record: SessionRecord) async throws {
        try await observe(.insert) { try await base.insert(record) }
    }

    func find(key: [UInt8], now: UnixTime) async throws -> SessionRecord? {
        try await observe(.find) { try await base.find(key: key, now: now) }
    }

    func update(_ record: SessionRecord) async throws {
        try await observe(.update) { try await base.update(record) }
    }

    func replace(_ record: SessionRecord, ifSealed expected: [UInt8]) async throws -> Bool {
        try await observe(.replace) { try await base.replace(record, ifSealed: expected) }
    }

    func exclusively<T: Sendable>(
        key: [UInt8], now: UnixTime, _ body: @Sendable (SessionRecord?) async throws -> (SessionRecord?, T)
    ) async throws -> T {
        try await base.exclusively(key: key, now: now, body)
    }

    func remove(key: [UInt8]) async throws -> SessionRecord? {
        try await observe(.remove) { try await base.remove(key: key) }
    }

    func removeAll(issuer: String, idpSessionID: String?, subject: String?) async throws -> [SessionRecord] {
        try await observe(.removeAll) {
            try await base.removeAll(issuer: issuer, idpSessionID: idpSessionID, subject: subject)
        }
    }

    func removeExpired(now: UnixTime) async throws -> [SessionRecord] {
        try await observe(.removeExpired) { try await base.removeExpired(now: now) }
    }

    func ping() async throws {
        try await observe(.ping) { try await base.ping() }
    }

    func list(issuer: String?, idpSessionID: String?, subject: String?, limit: Int) async throws -> [SessionRecord] {
        try await observe(.list) {
            try await base.list(issuer: issuer, idpSessionID: idpSessionID, subject: subject, limit: limit)
        }
    }
}

/// True for the first caller of ``claim()`` only.
final class OnceFlag: Sendable {
    private let done = Atomic<Bool>(false)
    func claim() -> Bool { !done.exchange(true, ordering: .relaxed) }
}
