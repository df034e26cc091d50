import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Helpers to run real servers on loopback in tests.
public enum TestServers {
    /// Next candidate port. Ports come from 20000-32000, below Linux's ephemeral range, so an
    /// outgoing connection can never take a port between this check and the server's bind.
    static let nextPort = Mutex<Int>(20000 + Int(UInt32.random(in: 0..<6000)))

    /// A currently free TCP port on 127.0.0.1, never handed out twice by this process.
    public static func freePort() async throws -> Int {
        for _ in 0..<200 {
            let candidate = nextPort.withLock { port -> Int in
                port = port >= 32000 ? 20000 : port + 1
                return port
            }
            if let channel = try? await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: candidate).get()
            {
                try? await channel.close()
                return candidate
            }
        }
        throw TestServerError(message: "no free port found")
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
            tasks.addTask { try await group.run() }  // justified: structured child task of the group
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

    /// Polls until 127.0.0.1:`port` accepts a connection (20 s at most: parallel test runs on two
    /// cores can be slow to start servers).
    public static func waitUntilListening(port: Int) async throws {
        for _ in 0..<1000 {
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
    /// Creates an error.
    public init(message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
