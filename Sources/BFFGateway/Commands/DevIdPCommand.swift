import ArgumentParser
import BFFCore
import BFFDevIdentityProvider
import Foundation
import Logging
import ServiceLifecycle
import Yams

/// `bff dev-idp --config FILE`: the development IdP alone.
struct DevIdPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-idp", abstract: "Run the development identity provider alone.")

    @Option(name: .long, help: "Path of the dev IdP YAML (listen, issuer, users, clients, lifetimes).")
    var config: String

    @Flag(name: .long, help: "Allow binding a non-loopback address.")
    var allowRemote = false

    func run() async throws {
        CommandSupport.bootstrapLogging()
        guard let data = FileManager.default.contents(atPath: config) else {
            CommandSupport.printError("\(config): cannot be read (fix: check the --config path)")
            throw ExitCode(1)
        }
        let (host, port, settings) = try Self.parse(String(decoding: data, as: UTF8.self), path: config)
        guard Self.mayListen(on: host, allowRemote: allowRemote) else {
            CommandSupport.printError(
                "\(config): listen: \(host) is not a loopback address (fix: use 127.0.0.1, or pass --allow-remote)")
            throw ExitCode(1)
        }
        let idp = try DevIdentityProvider(configuration: settings)
        let logger = Logger(label: "bff.dev-idp")
        print(  // justified: tell the developer where the IdP listens
            "dev IdP listening on \(host):\(port), issuer \(settings.issuer)")
        let group = ServiceGroup(
            configuration: .init(
                services: [idp.makeApplication(host: host, port: port, logger: logger)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// The dev IdP binds loopback addresses only, unless explicitly allowed.
    static func mayListen(on host: String, allowRemote: Bool) -> Bool {
        allowRemote || WebURL.isLoopbackHost(host.contains(":") ? "[\(host)]" : host)
    }

    static func parse(_ yaml: String, path: String) throws -> (String, Int, DevIdentityProviderConfiguration) {
        func fail(_ message: String) -> ExitCode {
            CommandSupport.printError("\(path): \(message)")
            return ExitCode(1)
        }
        guard let root = (try? Yams.load(yaml: yaml)) as? [String: Any] else {
            throw fail("(file): not a YAML mapping")
        }
        let listen = root["listen"] as? String ?? "127.0.0.1:5556"
        guard let (host, port) = GatewayConfigurationLoader.parseListen(listen) else {
            throw fail("listen: '\(listen)' is not host:port")
        }
        let issuer = root["issuer"] as? String ?? "http://\(host):\(port)"
        var users = DevUser.defaults
        if let list = root["users"] as? [[String: Any]] {
            users = list.compactMap { entry in
                guard let name = entry["username"] as? String, let password = entry["password"] as? String else {
                    return nil
                }
                return DevUser(
                    username: name, password: password, subject: entry["subject"] as? String ?? name,
                    name: entry["name"] as? String ?? name, email: entry["email"] as? String ?? "\(name)@example.com")
            }
        }
        var clients: [DevClient] = []
        for entry in root["clients"] as? [[String: Any]] ?? [] {
            // `jwks`: the public keys of a private_key_jwt client, as a JWKS file (what
            // `bff keys client-key` prints) or inline.
            var publicKeys: [JWSPublicKey] = []
            if let jwks = entry["jwks"] {
                let document: Any?
                if let path = jwks as? String {
                    document = FileManager.default.contents(atPath: path).flatMap {
                        try? JSONSerialization.jsonObject(with: $0)
                    }
                } else {
                    document = jwks
                }
                guard let keys = (document as? [String: Any])?["keys"] as? [[String: Any]], !keys.isEmpty else {
                    throw fail("clients: jwks must be a JWKS ({keys: [...]}) or the path of one")
                }
                for key in keys {
                    let members = key.compactMapValues { $0 as? String }.mapValues { JSONValue.string($0) }
                    do {
                        publicKeys.append(try JWSPublicKey(jwk: members))
                    } catch {
                        throw fail("clients: a jwks key cannot be used: \(error.reason)")
                    }
                }
            }
            guard let id = entry["clientId"] as? String,
                let secret = entry["clientSecret"] as? String ?? (publicKeys.isEmpty ? nil : "")
            else {
                throw fail("clients: each client needs clientId and clientSecret (or jwks for private_key_jwt)")
            }
            clients.append(
                DevClient(
                    clientID: id, clientSecret: secret, redirectURIs: entry["redirectUris"] as? [String] ?? [],
                    postLogoutRedirectURIs: entry["postLogoutRedirectUris"] as? [String] ?? [],
                    publicKeys: publicKeys))
        }
        guard !clients.isEmpty else { throw fail("clients: at least one client is required") }
        var settings = DevIdentityProviderConfiguration(issuer: issuer, users: users, clients: clients)
        if let value = root["accessTokenLifetime"] as? Int { settings.accessTokenLifetime = Int64(value) }
        if let value = root["idTokenLifetime"] as? Int { settings.idTokenLifetime = Int64(value) }
        if let value = root["refreshTokenLifetime"] as? Int { settings.refreshTokenLifetime = Int64(value) }
        if let value = root["signingAlgorithm"] as? String { settings.signingAlgorithm = value }
        if let value = root["dpopNonce"] as? Bool { settings.dpopNonce = value }
        return (host, port, settings)
    }
}
