import BFFCore
import Foundation

/// Reads typed values from the parsed YAML tree with environment overrides (`BFF_` + the upper-snake
/// key path), collecting every problem instead of stopping at the first.
final class ConfigReader {
    let root: [String: Any]
    let environment: [String: String]
    private(set) var problems: [ConfigurationProblem] = []
    private var visited: Set<String> = []

    init(root: [String: Any], environment: [String: String]) {
        self.root = root
        self.environment = environment
    }

    func problem(_ path: String, _ message: String, _ fix: String) {
        problems.append(ConfigurationProblem(path: path, message: message, fix: fix))
    }

    /// `oidc.clientSecret` → `BFF_OIDC_CLIENT_SECRET`.
    static func environmentName(_ path: String) -> String {
        var output = "BFF"
        for segment in path.split(separator: ".") {
            output += "_"
            var previousLower = false
            for character in segment {
                // `frontends[0].oidc` → `BFF_FRONTENDS_0_OIDC`.
                if character == "[" {
                    output += "_"
                    continue
                }
                if character == "]" { continue }
                if character.isUppercase && previousLower { output += "_" }
                output += character.uppercased()
                previousLower = character.isLowercase || character.isNumber
            }
        }
        return output
    }

    /// The raw YAML value at `path` (nil when absent), marking it as known.
    func raw(_ path: String) -> Any? {
        visited.insert(path)
        let node = Self.node(at: path, in: root)
        if node is NSNull { return nil }
        return node
    }

    /// Whether the key is present with an explicit null.
    func isExplicitNull(_ path: String) -> Bool {
        Self.node(at: path, in: root) is NSNull
    }

    /// The node at a dotted path whose segments may index lists (`frontends[1].oidc`).
    static func node(at path: String, in root: [String: Any]) -> Any? {
        var node: Any? = root
        for segment in path.split(separator: ".") {
            var name = segment
            var index: Int?
            if segment.hasSuffix("]"), let open = segment.firstIndex(of: "[") {
                name = segment[..<open]
                index = Int(segment[segment.index(after: open)..<segment.index(before: segment.endIndex)])
                guard index != nil else { return nil }
            }
            guard let dictionary = node as? [String: Any] else { return nil }
            node = dictionary[String(name)]
            if let index {
                guard let list = node as? [Any], list.indices.contains(index) else { return nil }
                node = list[index]
            }
        }
        return node
    }

    func string(_ path: String) -> String? {
        if let value = environment[Self.environmentName(path)] {
            visited.insert(path)
            return value
        }
        guard let value = raw(path) else { return nil }
        switch value {
        case let text as String: return text
        case let number as Int: return String(number)
        case let flag as Bool: return flag ? "true" : "false"
        case let number as Double: return String(number)
        default:
            problem(path, "must be a string", "write a plain value")
            return nil
        }
    }

    func bool(_ path: String) -> Bool? {
        guard let text = string(path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default:
            problem(path, "'\(text)' is not a boolean", "use true or false")
            return nil
        }
    }

    func int(_ path: String) -> Int? {
        guard let text = string(path) else { return nil }
        guard let value = Int(text) else {
            problem(path, "'\(text)' is not a whole number", "write a number such as 32768")
            return nil
        }
        return value
    }

    /// `75s`, `10m`, `8h`, `7d`, `500ms` or plain seconds.
    func duration(_ path: String) -> Duration? {
        guard let text = string(path) else { return nil }
        if let parsed = Self.parseDuration(text) { return parsed }
        problem(path, "'\(text)' is not a duration", "write a number with a unit: 500ms, 75s, 10m, 8h or 7d")
        return nil
    }

    static func parseDuration(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, milliseconds) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            if suffix == "s", number.hasSuffix("m") { continue }
            guard let value = Int64(number), value >= 0, value < Int64.max / milliseconds else { return nil }
            return .milliseconds(value * milliseconds)
        }
        if let seconds = Int64(trimmed), seconds >= 0 { return .seconds(seconds) }
        return nil
    }

    func stringList(_ path: String) -> [String]? {
        if let value = environment[Self.environmentName(path)] {
            visited.insert(path)
            return value.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        }
        guard let value = raw(path) else { return nil }
        if let list = value as? [Any] {
            var result: [String] = []
            for (index, element) in list.enumerated() {
                if let text = element as? String {
                    result.append(text)
                } else {
                    problem("\(path)[\(index)]", "must be a string", "quote the value")
                }
            }
            return result
        }
        problem(path, "must be a list", "write [a, b]")
        return nil
    }

    func stringMap(_ path: String) -> [String: String]? {
        guard let value = raw(path) else { return nil }
        guard let dictionary = value as? [String: Any] else {
            problem(path, "must be a mapping", "write {name: value}")
            return nil
        }
        var result: [String: String] = [:]
        for (key, element) in dictionary {
            visited.insert("\(path).\(key)")
            if let text = element as? String {
                result[key] = text
            } else if let number = element as? Int {
                result[key] = String(number)
            } else {
                problem("\(path).\(key)", "must be a string", "quote the value")
            }
        }
        return result
    }

    /// Resolves `env:NAME` and `file:PATH` references; other values are returned as they are.
    func secret(_ path: String, _ value: String?) -> String? {
        guard let value else { return nil }
        if value.hasPrefix("env:") {
            let name = String(value.dropFirst(4))
            guard let resolved = environment[name], !resolved.isEmpty else {
                problem(path, "environment variable \(name) is not set", "export \(name)=... before starting")
                return nil
            }
            return resolved
        }
        if value.hasPrefix("file:") {
            let file = String(value.dropFirst(5))
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8)
            else {
                problem(path, "file \(file) cannot be read", "check the path and its permissions")
                return nil
            }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return value
    }

    /// Keys present in the YAML that no reader asked for.
    func unknownKeys() -> [String] {
        var unknown: [String] = []
        func walk(_ node: Any, _ prefix: String) {
            guard let dictionary = node as? [String: Any] else { return }
            for (key, value) in dictionary {
                let path = prefix.isEmpty ? key : "\(prefix).\(key)"
                if visited.contains(path) {
                    // A list read entry by entry (`frontends[0].name`): each entry's keys are checked.
                    if let list = value as? [Any], visited.contains(where: { $0.hasPrefix(path + "[") }) {
                        for (index, element) in list.enumerated() { walk(element, "\(path)[\(index)]") }
                    }
                    continue
                }
                if value is [String: Any], visited.contains(where: { $0.hasPrefix(path + ".") }) {
                    walk(value, path)
                } else {
                    unknown.append(path)
                }
            }
        }
        walk(root, "")
        return unknown.sorted()
    }
}

/// One mapping of the configuration file, read by keys relative to it (`issuer` in the `oidc`
/// section is `oidc.issuer`): each configuration type reads its own section
/// (`OIDCConfiguration+Reading.swift` and its neighbours), wherever the section sits in the file.
struct ConfigSection {
    let reader: ConfigReader
    /// The section's dotted path; empty for the top level.
    let prefix: String

    /// The full dotted path of `key`, as problems and environment overrides name it.
    func path(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }
    /// A nested mapping.
    func section(_ key: String) -> ConfigSection { ConfigSection(reader: reader, prefix: path(key)) }

    func problem(_ key: String, _ message: String, _ fix: String) { reader.problem(path(key), message, fix) }
    func raw(_ key: String) -> Any? { reader.raw(path(key)) }
    func isExplicitNull(_ key: String) -> Bool { reader.isExplicitNull(path(key)) }
    func string(_ key: String) -> String? { reader.string(path(key)) }
    func bool(_ key: String) -> Bool? { reader.bool(path(key)) }
    func int(_ key: String) -> Int? { reader.int(path(key)) }
    func duration(_ key: String) -> Duration? { reader.duration(path(key)) }
    func stringList(_ key: String) -> [String]? { reader.stringList(path(key)) }
    func stringMap(_ key: String) -> [String: String]? { reader.stringMap(path(key)) }
    /// `key`'s value with `env:` and `file:` references resolved.
    func secret(_ key: String) -> String? { reader.secret(path(key), reader.string(path(key))) }

    /// A value of a closed set of names (`parse` returns nil for others), or a problem with `fix`.
    func choice<Value>(_ key: String, fix: String, _ parse: (String) -> Value?) -> Value? {
        guard let text = string(key) else { return nil }
        if let value = parse(text) { return value }
        problem(key, "'\(text)' is unknown", fix)
        return nil
    }
}

extension ConfigReader {
    /// The top-level section.
    var top: ConfigSection { ConfigSection(reader: self, prefix: "") }
}

/// The same reads by declared key (``ConfigurationKey``): a section's reader names each key only
/// through its case, the one validation names it by too.
extension ConfigSection {
    /// The section of `Key`'s type under this one (`server`, `oidc`, …).
    func section<Key: ConfigurationKey>(of _: Key.Type) -> ConfigSection { section(Key.section) }
    func problem<Key: ConfigurationKey>(_ key: Key, _ message: String, _ fix: String) {
        problem(key.rawValue, message, fix)
    }
    func raw<Key: ConfigurationKey>(_ key: Key) -> Any? { raw(key.rawValue) }
    func isExplicitNull<Key: ConfigurationKey>(_ key: Key) -> Bool { isExplicitNull(key.rawValue) }
    func string<Key: ConfigurationKey>(_ key: Key) -> String? { string(key.rawValue) }
    func bool<Key: ConfigurationKey>(_ key: Key) -> Bool? { bool(key.rawValue) }
    func int<Key: ConfigurationKey>(_ key: Key) -> Int? { int(key.rawValue) }
    func duration<Key: ConfigurationKey>(_ key: Key) -> Duration? { duration(key.rawValue) }
    func stringList<Key: ConfigurationKey>(_ key: Key) -> [String]? { stringList(key.rawValue) }
    func stringMap<Key: ConfigurationKey>(_ key: Key) -> [String: String]? { stringMap(key.rawValue) }
    func secret<Key: ConfigurationKey>(_ key: Key) -> String? { secret(key.rawValue) }
    func choice<Key: ConfigurationKey, Value>(_ key: Key, fix: String, _ parse: (String) -> Value?) -> Value? {
        choice(key.rawValue, fix: fix, parse)
    }
}
