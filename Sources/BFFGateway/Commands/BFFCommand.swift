import ArgumentParser
import AsyncHTTPClient
import BFFCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `bff`: the swift-bff gateway.
@main
struct BFFCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bff",
        abstract: "A Backend-for-Frontend security gateway for single-page apps.",
        subcommands: [
            ServeCommand.self, CheckConfigCommand.self, ReloadCommand.self, DemoCommand.self, DevIdPCommand.self,
            KeysCommand.self, SessionsCommand.self,
        ]
    )

    /// With `BFF_SERVER_EVENT_LOOP_EXECUTOR=true`, runs Swift concurrency on NIO's event loops, so a
    /// request's task and its connections share a thread. Off by default: it is process-global, and on
    /// this project's benchmark it made no measurable difference (see Benchmarks/RESULTS.md).
    /// Must happen before any task runs.
    static func main() async {
        let setting = ProcessInfo.processInfo.environment["BFF_SERVER_EVENT_LOOP_EXECUTOR"]?.lowercased()
        if setting == "true" || setting == "1" {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // SPEC §1: usage errors exit with 2 (ArgumentParser would use 64).
            if exitCode(for: error) == .validationFailure {
                CommandSupport.printError(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}

/// Shared process setup: logging, reading the configuration file, running services.
enum CommandSupport {
    /// Runs `services` until SIGTERM/SIGINT, then shuts them down gracefully: in-flight requests
    /// get `grace`, then they are cancelled (their connections closed) and the run ends.
    static func run(_ services: [any Service], grace: Duration, logger: Logger) async throws {
        try await serviceGroup(services, grace: grace, logger: logger).run()
    }

    /// The service group `run` uses; tests trigger its shutdown directly (`handlesSignals: false`).
    static func serviceGroup(
        _ services: [any Service], grace: Duration, handlesSignals: Bool = true, logger: Logger
    ) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: handlesSignals ? [.sigterm, .sigint] : [], logger: logger)
        // A backstop only: the application closes its connections after `grace` (BoundedShutdown);
        // escalating to cancellation can trap in NIO while a connection is being accepted.
        configuration.maximumGracefulShutdownDuration = grace * 2 + .seconds(5)
        return ServiceGroup(configuration: configuration)
    }

    /// Shuts HTTP clients down, all of them even if one fails.
    static func shutdown(_ clients: [HTTPClient]) async throws {
        var failure: (any Error)?
        for client in clients {
            do { try await client.shutdown() } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Logging for the process: `logging.level` (else `BFF_LOG_LEVEL`, else info) and
    /// `logging.format` (text lines, or one JSON object per line).
    static func bootstrapLogging(_ settings: GatewayConfiguration.LoggingSettings = .init()) {
        let level =
            settings.level ?? ProcessInfo.processInfo.environment["BFF_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? .info
        switch settings.format {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }

    static func loadConfiguration(path: String) throws -> GatewayConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            printError("\(path): cannot be read (fix: check the --config path)")
            throw ExitCode(1)
        }
        let environment = ProcessInfo.processInfo.environment
        switch GatewayConfigurationLoader.load(yaml: String(decoding: data, as: UTF8.self), environment: environment) {
        case .success(var configuration):
            configuration.source = ConfigurationSource(path: path, contents: data, environment: environment)
            return configuration
        case .failure(let list):
            for problem in list.problems { printError("\(path): \(problem)") }
            throw ExitCode(1)
        }
    }

    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// `bff check-config --config FILE`.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a configuration file and print every problem.")

    @Option(name: .long, help: "Path of the YAML configuration.")
    var config: String

    func run() throws {
        let configuration = try CommandSupport.loadConfiguration(path: config)
        let bff = configuration.bff
        print(  // justified: the command's result goes to stdout
            "ok: \(config) (issuer \(bff.oidc.issuer), client \(bff.oidc.clientID), store \(bff.session.store), listen \(bff.server.host):\(bff.server.port), public origin \(bff.server.effectivePublicOrigin), \(bff.keys.isEmpty ? "generated key" : "\(bff.keys.count) key(s)"))"
        )
    }
}

/// `bff keys generate`.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage sealing keys and the client key.",
        subcommands: [Generate.self, ClientKey.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new random 256-bit key in the configuration's format.")

        @Option(name: .long, help: "Key id (default: k-<random>).")
        var id: String?

        func run() throws {
            let random = SystemSecureRandom()
            let keyID = id ?? "k-\(random.token(byteCount: 4))"
            guard KeyRing.isValidID(keyID) else {
                CommandSupport.printError(
                    "--id: '\(keyID)' is not a valid key id (fix: use 1-32 characters of A-Z a-z 0-9 . _ -)")
                throw ExitCode(2)
            }
            let secret = Base64URL.encode(random.bytes(32))
            print(  // justified: the command's result goes to stdout
                "keys:\n  - id: \"\(keyID)\"\n    secret: \"\(secret)\"")
        }
    }

    /// `bff keys client-key --out FILE`: a key for `private_key_jwt`.
    struct ClientKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "client-key",
            abstract: "Write a new private key for private_key_jwt (mode 0600) and print its public JWKS.")

        @Option(name: .long, help: "File for the private key (PEM); an existing file is never overwritten.")
        var out: String

        @Option(name: .long, help: "ES256 (default, P-256), RS256 or PS256 (RSA-2048).")
        var algorithm: String = "ES256"

        func run() throws {
            guard let algorithm = JWSAlgorithm(rawValue: algorithm.uppercased()) else {
                CommandSupport.printError("--algorithm: '\(algorithm)' is unknown (fix: use ES256, RS256 or PS256)")
                throw ExitCode(2)
            }
            let key = try JWSPrivateKey.generate(algorithm)
            // O_EXCL: never replace a key that an IdP may already trust; 0600 from the start.
            let descriptor = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                let code = errno
                let reason =
                    code == EEXIST
                    ? "exists, or is a symbolic link (remove it first to replace the key)"
                    : "cannot be created (\(String(cString: strerror(code))))"
                CommandSupport.printError("--out: \(out) \(reason)")
                throw ExitCode(1)
            }
            let pem = Array((key.pemRepresentation + "\n").utf8)
            let written = pem.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
            guard written == pem.count else {
                unlink(out)
                CommandSupport.printError("--out: \(out) could not be written")
                throw ExitCode(1)
            }
            print(  // justified: the command's result goes to stdout
                """
                # Register this public JWKS for the client at the IdP (token_endpoint_auth_method private_key_jwt):
                {"keys":[\(key.publicJWKJSON)]}
                # and configure the gateway with:
                oidc:
                  clientAuth: private_key_jwt
                  clientKey: \(JSONText.quote("file:" + out))
                """)
        }
    }
}
