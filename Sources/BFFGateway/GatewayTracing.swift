import BFFCore
import Foundation
import Logging
import ServiceLifecycle
import Tracing

/// The gateway's tracer: OpenTelemetry spans exported over OTLP/HTTP (protobuf) to
/// `telemetry.otlp.endpoint`, with the standard `OTEL_*` variables honoured (they override the
/// file, as OpenTelemetry SDKs do). One tracer per gateway, given to the BFF explicitly (never the
/// process-wide instrumentation system), with its exporter (run by the gateway's listener service
/// and stopped after the listener has drained, so the last requests' spans are sent too).
enum GatewayTracing {
    static func make(_ settings: GatewayConfiguration.TelemetrySettings, logger: Logger) throws -> (
        tracer: any Tracer, exporter: OTLPExporter
    )? {
        guard settings.enabled else { return nil }
        let environment = settings.otelEnvironment
        guard environment["OTEL_TRACES_EXPORTER"].map({ $0.lowercased() == "none" }) != true else { return nil }
        var export = OTLPExportSettings(url: "")
        export.scheduleDelay = settings.exportInterval
        if let url = environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], !url.isEmpty {
            export.url = url
        } else if let base = environment["OTEL_EXPORTER_OTLP_ENDPOINT"], !base.isEmpty {
            export.url = tracesURL(base: base)
        } else if let base = settings.endpoint {
            export.url = tracesURL(base: base)
        }
        guard let url = URL(string: export.url), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw ProblemList([
                .init(
                    path: "telemetry.otlp.endpoint",
                    message: "the OTLP endpoint (file or OTEL_* variable) is not an http(s) URL",
                    fix: "set telemetry.otlp.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT to e.g. http://127.0.0.1:4318")
            ])
        }
        func warn(_ variable: String, _ fix: String) {
            logger.warning(
                "Ignored an OpenTelemetry variable",
                metadata: ["bff.variable": .string(variable), "bff.fix": .string(fix)])
        }
        func milliseconds(_ names: [String]) -> Duration? {
            for name in names {
                guard let text = environment[name], !text.isEmpty else { continue }
                if let value = Int(text), value >= 0 { return .milliseconds(value) }
                warn(name, "give a whole number of milliseconds")
            }
            return nil
        }
        func count(_ name: String) -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            if let value = Int(text), value > 0 { return value }
            warn(name, "give a positive whole number")
            return nil
        }
        for name in ["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"] {
            guard let text = environment[name], !text.isEmpty else { continue }
            if let headers = keyValueList(text) {
                export.headers = headers
            } else {
                // The value is not logged: it usually holds a collector's credentials.
                warn(name, "write key=value pairs separated by commas, values percent-encoded")
            }
            break
        }
        if let timeout = milliseconds(["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]) {
            if timeout > .zero {
                export.timeout = timeout
            } else {
                warn("OTEL_EXPORTER_OTLP_TIMEOUT", "give a positive number of milliseconds (every export would fail)")
            }
        }
        export.scheduleDelay = milliseconds(["OTEL_BSP_SCHEDULE_DELAY"]) ?? export.scheduleDelay
        export.maxQueueSize = count("OTEL_BSP_MAX_QUEUE_SIZE") ?? export.maxQueueSize
        export.maxExportBatchSize = min(
            count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") ?? export.maxExportBatchSize, export.maxQueueSize)
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let value = environment[name], !value.isEmpty, value != "http/protobuf" {
                warn(name, "only http/protobuf is offered")
            }
        }

        var resource: [String: String] = [:]
        if let text = environment["OTEL_RESOURCE_ATTRIBUTES"], !text.isEmpty {
            if let pairs = keyValueList(text) {
                for (key, value) in pairs { resource[key] = value }
            } else {
                warn("OTEL_RESOURCE_ATTRIBUTES", "write key=value pairs separated by commas")
            }
        }
        resource["service.name"] =
            environment["OTEL_SERVICE_NAME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? resource["service.name"] ?? "bff"
        resource["service.version"] = resource["service.version"] ?? GatewayMetrics.version
        resource["telemetry.sdk.name"] = "swift-bff"
        resource["telemetry.sdk.language"] = "swift"
        resource["telemetry.sdk.version"] = GatewayMetrics.version
        export.resource = resource.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }

        let sampling = sampling(ratio: settings.sampleRatio, environment: environment, warn: warn)
        let exporter = OTLPExporter(settings: export, version: GatewayMetrics.version, logger: logger)
        return (OTLPTracer(sampling: sampling, exporter: exporter), exporter)

    }

    /// `base` + `/v1/traces`.
    static func tracesURL(base: String) -> String {
        (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces"
    }

    /// `telemetry.sampleRatio` as a parent-based ratio sampler, unless `OTEL_TRACES_SAMPLER`
    /// names another.
    static func sampling(
        ratio: Double, environment: [String: String], warn: (String, String) -> Void
    ) -> TraceSampling {
        var argument = ratio
        if let text = environment["OTEL_TRACES_SAMPLER_ARG"], !text.isEmpty {
            if let value = Double(text), (0...1).contains(value) {
                argument = value
            } else {
                warn("OTEL_TRACES_SAMPLER_ARG", "give a ratio from 0 to 1")
            }
        }
        let fallback = TraceSampling(root: .ratio(ratio), followParent: true)
        guard let name = environment["OTEL_TRACES_SAMPLER"], !name.isEmpty else { return fallback }
        switch name.lowercased() {
        case "always_on": return TraceSampling(root: .always, followParent: false)
        case "always_off": return TraceSampling(root: .never, followParent: false)
        case "traceidratio": return TraceSampling(root: .ratio(argument), followParent: false)
        case "parentbased_always_on": return TraceSampling(root: .always, followParent: true)
        case "parentbased_always_off": return TraceSampling(root: .never, followParent: true)
        case "parentbased_traceidratio": return TraceSampling(root: .ratio(argument), followParent: true)
        default:
            warn(
                "OTEL_TRACES_SAMPLER",
                "use always_on, always_off, traceidratio or parentbased_(always_on|always_off|traceidratio)")
            return fallback
        }
    }

    /// `key=value,key=value` (W3C Baggage style, values percent-decoded), or nil when malformed.
    static func keyValueList(_ text: String) -> [(String, String)]? {
        var result: [(String, String)] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, let value = parts[1].trimmingCharacters(in: .whitespaces).removingPercentEncoding,
                !value.contains(where: { $0 == "\r" || $0 == "\n" })
            else { return nil }
            result.append((key, value))
        }
        return result
    }
}

/// The public listener and the span exporter in one service: at shutdown the listener drains
/// first (its last requests' spans are still exported), then the exporter sends the rest.
struct ListenerWithSpanExporter: Service {
    let listener: any Service
    let exporter: OTLPExporter

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await exporter.run() }  // justified: structured child, ended by stop() below
            do {
                try await listener.run()
            } catch {
                exporter.stop()
                throw error
            }
            exporter.stop()
            try await group.waitForAll()
        }
    }
}
