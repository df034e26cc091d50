import BFFCore
import Foundation
import Logging
import Synchronization

/// `logging.format: json`: one JSON object per line on standard error — `time` (RFC 3339, UTC,
/// milliseconds), `level`, `logger`, `message`, then every metadata key as a string field.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    /// One line at a time, whole, whichever thread logs.
    static let output = Mutex<FileHandle>(.standardError)

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("time", Self.timestamp(Date())), ("level", event.level.rawValue), ("logger", label),
            ("message", event.message.description),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() where !["time", "level", "logger", "message"].contains(key) {
            if let value = merged[key] { fields.append((key, "\(value)")) }
        }
        let line = Self.line(fields)
        Self.output.withLock { $0.write(Data(line.utf8)) }
    }

    /// `{"k":"v",...}` and a newline, every string escaped for JSON.
    static func line(_ fields: [(String, String)]) -> String {
        var line = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { line += "," }
            line += JSONText.quote(key) + ":" + JSONText.quote(value)
        }
        return line + "}\n"
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true)
                .timeSeparator(.colon).timeZone(separator: .omitted))
    }
}
