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
        typealias Key = APIRouteConfiguration.Key
        for key in entry.keys where !Key.names.contains(key) {
            reader.problem(
                "\(path).\(key)", "is not a known configuration key", "check the spelling against docs/configuration.md"
            )
        }
        guard let prefix = entry[Key.path.rawValue] as? String, let upstream = entry[Key.upstream.rawValue] as? String
        else {
            reader.problem(path, "needs path and upstream", "write {path: /api/x, upstream: http://127.0.0.1:5090}")
            return nil
        }
        var route = APIRouteConfiguration(path: prefix, upstream: upstream)
        if let token = entry[Key.token.rawValue] {
            if let name = token as? String, let requirement = TokenRequirement(name: name) {
                route.token = requirement
            } else {
                reader.problem(
                    "\(path).\(Key.token.rawValue)", "'\(token)' is not a token type",
                    "use none, user, user-or-none, user-or-client, client or exchange")
            }
        }
        if let scopes = entry[Key.scopes.rawValue] {
            if let list = scopes as? [String] {
                route.scopes = list
            } else if let text = scopes as? String {
                route.scopes = text.split(separator: " ").map(String.init)
            } else if !(scopes is NSNull) {
                reader.problem("\(path).\(Key.scopes.rawValue)", "must be a list of strings", "write [api.read]")
            }
        }
        if let resource = entry[Key.resource.rawValue] as? String { route.resource = resource }
        if let timeout = entry[Key.timeout.rawValue] {
            if let parsed = ConfigReader.parseDuration("\(timeout)") {
                route.timeout = parsed
            } else {
                reader.problem("\(path).\(Key.timeout.rawValue)", "'\(timeout)' is not a duration", "write 30s")
            }
        }
        let caFilePath = "\(path).\(Key.caFile.rawValue)"
        if let caFile = entry[Key.caFile.rawValue] {
            if let file = caFile as? String, !file.isEmpty {
                if !upstream.lowercased().hasPrefix("https://") {
                    reader.problem(
                        caFilePath, "only applies to https:// upstreams", "remove caFile or use an https upstream"
                    )
                } else {
                    do {
                        _ = try TLSUpstreams.certificates(in: file)
                        route.caFile = file
                    } catch {
                        reader.problem(caFilePath, "\(error)", "give a readable PEM file of CA certificates")
                    }
                }
            } else {
                reader.problem(caFilePath, "must be a file path", "write caFile: /etc/bff/internal-ca.pem")
            }
        }
        if let exchange = entry[Key.exchange.rawValue] {
            let exchangePath = "\(path).\(Key.exchange.rawValue)"
            if let mapping = exchange as? [String: Any] {
                for key in mapping.keys where !["audience", "scopes", "resource"].contains(key) {
                    reader.problem(
                        "\(exchangePath).\(key)", "is not a known configuration key", "use audience, scopes, resource")
                }
                var parameters = TokenExchange()
                parameters.audience = mapping["audience"] as? String
                if let scopes = mapping["scopes"] as? [String] {
                    parameters.scopes = scopes
                } else if let text = mapping["scopes"] as? String {
                    parameters.scopes = text.split(separator: " ").map(String.init)
                }
                parameters.resource = mapping["resource"] as? String
                route.exchange = parameters
            } else {
                reader.problem(exchangePath, "must be a mapping", "write {audience: orders, scopes: [orders.read]}")
            }
        }
        if let acr = entry[Key.requireAcr.rawValue] {
            if let list = acr as? [String] {
                route.requireAcr = list
            } else if let text = acr as? String {
                route.requireAcr = text.split(separator: " ").map(String.init)
            } else {
                reader.problem("\(path).\(Key.requireAcr.rawValue)", "must be a list of acr values", "write [mfa]")
            }
        }
        if let age = entry[Key.maxAuthAge.rawValue] {
            if let parsed = ConfigReader.parseDuration("\(age)") {
                route.maxAuthAge = parsed
            } else {
                reader.problem("\(path).\(Key.maxAuthAge.rawValue)", "'\(age)' is not a duration", "write 5m")
            }
        }
        if let websocket = entry[Key.websocket.rawValue] {
            if let flag = websocket as? Bool {
                route.websocket = flag
            } else {
                reader.problem("\(path).\(Key.websocket.rawValue)", "must be true or false", "write websocket: true")
            }
        }
        return route
    }
}
