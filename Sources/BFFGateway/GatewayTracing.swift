import Logging
import OTel
import ServiceLifecycle
import Tracing

/// The gateway's tracer: OpenTelemetry spans exported over OTLP/HTTP (protobuf) to
/// `telemetry.otlp.endpoint` and the standard `OTEL_*` variables. One tracer per gateway, given to
/// the BFF explicitly (never the process-wide instrumentation system), with the service that
/// batches and sends spans (run it beside the gateway; it flushes at shutdown).
enum GatewayTracing {
    static func make(_ settings: GatewayConfiguration.TelemetrySettings, logger: Logger) throws -> (
        tracer: any Tracer, service: any Service
    )? {
        guard settings.enabled else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = "bff"
        configuration.diagnosticLogger = .custom(logger)
        configuration.metrics.enabled = false  // metrics are Prometheus' (GatewayMetrics)
        configuration.logs.enabled = false
        configuration.propagators = [.traceContext]
        configuration.traces.exporter = .otlp
        if let endpoint = settings.endpoint {
            configuration.traces.otlpExporter.endpoint =
                (endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint) + "/v1/traces"
        }
        configuration.traces.sampler =
            settings.sampleRatio >= 1
            ? .parentBasedAlwaysOn : (.parentBasedTraceIDRatio(ratio: settings.sampleRatio) ?? .parentBasedAlwaysOn)
        configuration.traces.batchSpanProcessor.scheduleDelay = settings.exportInterval
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        return (backend.factory, backend.service)
    }
}
