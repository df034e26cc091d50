import BFFForwarder
import ServiceLifecycle

/// Runs the public application so that its graceful shutdown is bounded (SPEC §9, §11.1): on
/// SIGTERM it stops accepting and lets requests finish for `grace`; then it closes every client
/// connection and every upstream connection, so requests stuck on an upstream fail at once and the
/// application's own shutdown completes — the process exits 0.
///
/// The connections are closed rather than the serving task cancelled: cancelling a NIO server
/// task while an accepted connection is still buffered traps ("Deinited NIOAsyncWriter without
/// calling finish()", swift-nio #3481).
struct BoundedShutdown: Service {
    let application: any Service
    let grace: Duration
    let clients: OpenConnections
    let forwarder: NIOUpstream?

    private enum Finished { case application, deadline }

    func run() async throws {
        try await withThrowingTaskGroup(of: Finished.self) { group in
            group.addTask {  // justified: structured child task; inherits the graceful-shutdown context
                try await application.run()
                return .application
            }
            group.addTask {  // justified: structured child task, cancelled when the application ends first
                try await gracefulShutdown()  // returns once shutdown is triggered
                try await Task.sleep(for: grace)
                clients.closeAll()
                forwarder?.abortAll()
                return .deadline
            }
            while let finished = try await group.next() {
                if finished == .application {
                    group.cancelAll()
                    return
                }
            }
        }
    }
}
