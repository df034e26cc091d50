import BFFCore
import BFFForwarder
import Foundation

extension GatewayConfigurationLoader {
    /// Reads one `apis:` entry, reporting every problem with its position in the file.
    static func parseRoute(_ item: Any, path: String, reader: ConfigReader) -> APIRouteConfiguration? {
        guard let entry = item as? [String: Any] else {
            reader.problem(path, "must be a mapping", "write {path: /api/x, upstream: http://127.0.0.1:5090}")
            return nil
        }
        let known: Set<String> = ["path", "upstream", "token", "scopes", "resource", "timeout", "websocket", "caFile"]
        for key in entry.keys where !known.contains(key) {
            reader.problem(
                "\(path).\(key)", "is not a known configuration key", "check the spelling against docs/configuration.md"
            )
        }
        guard let prefix = entry["path"] as? String, let upstream = entry["upstream"] as? String else {
            reader.problem(path, "needs path and upstream", "write {path: /api/x, upstream: http://127.0.0.1:5090}")
            return nil
        }
        var route = APIRouteConfiguration(path: prefix, upstream: upstream)
        if let token = entry["token"] {
            if let name = token as? String, let requirement = TokenRequirement(name: name) {
                route.token = requirement
            } else {
                reader.problem(
                    "\(path).token", "'\(token)' is not a token type",
                    "use none, user, user-or-none, user-or-client or client")
            }
        }
        if let scopes = entry["scopes"] {
            if let list = scopes as? [String] {
                route.scopes = list
            } else if let text = scopes as? String {
                route.scopes = text.split(separator: " ").map(String.init)
            } else if !(scopes is NSNull) {
                reader.problem("\(path).scopes", "must be a list of strings", "write [api.read]")
            }
        }
        if let resource = entry["resource"] as? String { route.resource = resource }
        if let timeout = entry["timeout"] {
            if let parsed = ConfigReader.parseDuration("\(timeout)") {
                route.timeout = parsed
            } else {
                reader.problem("\(path).timeout", "'\(timeout)' is not a duration", "write 30s")
            }
        }
        if let caFile = entry["caFile"] {
            if let file = caFile as? String, !file.isEmpty {
                if !upstream.lowercased().hasPrefix("https://") {
                    reader.problem(
                        "\(path).caFile", "only applies to https:// upstreams", "remove caFile or use an https upstream"
                    )
                } else {
                    do {
                        _ = try TLSUpstreams.certificates(in: file)
                        route.caFile = file
                    } catch {
                        reader.problem("\(path).caFile", "\(error)", "give a readable PEM file of CA certificates")
                    }
                }
            } else {
                reader.problem("\(path).caFile", "must be a file path", "write caFile: /etc/bff/internal-ca.pem")
            }
        }
        if let websocket = entry["websocket"] {
            if let flag = websocket as? Bool {
                route.websocket = flag
            } else {
                reader.problem("\(path).websocket", "must be true or false", "write websocket: true")
            }
        }
        return route
    }
}
