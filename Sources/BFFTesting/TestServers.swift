import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Helpers to run real servers on loopback in tests.
public enum TestServers {
    /// A currently free TCP port on 127.0.0.1 (bound, read and released).
    public static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    /// Runs `services` in a service group while `body` runs, waiting until each of `ports`
    /// accepts connections; shuts the group down afterwards.
    public static func withRunning<Result: Sendable>(
        _ services: [any Service], ports: [Int], _ body: @Sendable () async throws -> Result
    ) async throws -> Result {
        var logger = Logger(label: "bff.test")
        logger.logLevel = .warning
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                for port in ports { try await waitUntilListening(port: port) }
                let result = try await body()
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    /// Polls until 127.0.0.1:`port` accepts a connection (5 s at most).
    public static func waitUntilListening(port: Int) async throws {
        for _ in 0..<250 {
            if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).get()
            {
                try? await channel.close()
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestServerError(message: "nothing listens on 127.0.0.1:\(port)")
    }
}

/// A test-server failure.
public struct TestServerError: Error, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// The message.
    public var description: String { message }
}
