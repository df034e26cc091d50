import BFFCore
import Logging

extension GatewayConfiguration.LoggingSettings {
    /// Reads `logging:`.
    mutating func read(_ section: ConfigSection) {
        if let value = section.string("level") {
            if let parsed = Logger.Level(rawValue: value) {
                level = parsed
            } else {
                section.problem(
                    "level", "'\(value)' is not a log level",
                    "use trace, debug, info, notice, warning, error or critical")
            }
        }
        if let value = section.string("format") {
            if let parsed = Format(rawValue: value) {
                format = parsed
            } else {
                section.problem("format", "'\(value)' is not a log format", "use text or json")
            }
        }
        if let value = section.bool("access") { access = value }
    }
}

extension GatewayConfiguration.TelemetrySettings {
    /// Reads `telemetry:`; `environment` tells whether OpenTelemetry's own variables name a collector.
    mutating func read(_ section: ConfigSection, environment: [String: String]) {
        if let value = section.string("otlp.endpoint") {
            if let url = WebURL(value), url.scheme == "http" || url.scheme == "https" {
                endpoint = value
            } else {
                section.problem(
                    "otlp.endpoint", "'\(value)' is not an http(s) URL",
                    "write the collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318, or null")
            }
        }
        otelEnvironment = environment.filter { $0.key.hasPrefix("OTEL_") }
        if let value = section.string("otlp.protocol"), value != "http/protobuf" {
            section.problem("otlp.protocol", "'\(value)' is not supported", "use http/protobuf (OTLP over HTTP)")
        }
        if let value = section.string("sampleRatio") {
            if let ratio = Double(value), (0...1).contains(ratio) {
                sampleRatio = ratio
            } else {
                section.problem("sampleRatio", "must be a number from 0 to 1", "use 1.0 (every trace) or 0.1")
            }
        }
    }
}
