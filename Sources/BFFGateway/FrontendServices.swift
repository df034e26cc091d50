import BFFHummingbird
import Dispatch
import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The frontends' background work, kept in step with reloads: runs each frontend's refresh-token
/// revoker, and — with a reloader — reloads the configuration on SIGHUP and, with `watch`, when
/// the file changes. A reload's new frontends get their revokers at once; a retired frontend's
/// revoker takes tokens for `drain` more (its last requests may still end sessions), then
/// revokes what it has and stops.
struct FrontendServices: Service {
    let frontends: ActiveFrontends
    let reloader: ConfigurationReloader?
    /// How often the file is checked for changes (`config.watch`); nil: no watching.
    let watch: Duration?
    let logger: Logger
    /// How long a retired frontend's revoker still takes tokens.
    var drain: Duration = .seconds(30)

    func run() async throws {
        let (triggers, trigger) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1))
        var signalSource: (any DispatchSourceSignal)?
        if reloader != nil {
            // SIGHUP reloads (`bff reload` sends it); its default action would end the process.
            signal(SIGHUP, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            source.setEventHandler { trigger.yield("SIGHUP") }
            source.resume()
            signalSource = source
        }
        defer { signalSource?.cancel() }
        await withDiscardingTaskGroup { group in
            var running = Set<ObjectIdentifier>()
            func startRevokers() {
                for frontend in frontends.current.frontends
                where running.insert(ObjectIdentifier(frontend.bff.revoker)).inserted {
                    group.addTask { try? await frontend.bff.revoker.run() }  // justified: structured child
                }
            }
            startRevokers()
            if let reloader, let watch {
                group.addTask {  // justified: a child of this service's task group (ends at shutdown)
                    await Self.watchFile(reloader.path, every: watch) { trigger.yield("file changed") }
                }
            }
            guard let reloader else { return }
            await withGracefulShutdownHandler {
                for await reason in triggers {
                    await reloader.reload(reason: reason)
                    startRevokers()
                    for retired in reloader.takeRetired() {
                        let drain = self.drain
                        group.addTask {  // justified: a structured child that drains a retired revoker
                            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: drain) }
                            retired.bff.revoker.finish()
                        }
                    }
                }
            } onGracefulShutdown: {
                trigger.finish()
            }
        }
    }

    /// Calls `changed` whenever the file's size, modification time or inode differ from the last
    /// reload's (an editor that replaces the file changes the inode) and then stayed the same for
    /// one more look (a file still being written is not read half-way), until graceful shutdown.
    static func watchFile(_ path: String, every interval: Duration, changed: @Sendable () -> Void) async {
        func stamp() -> String? {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(attributes[.size] ?? 0)/\(modified)/\(attributes[.systemFileNumber] ?? 0)"
        }
        var last = stamp()
        var pending: String?
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            let now = stamp()
            if now != last, now != nil {
                if now == pending {
                    last = now
                    pending = nil
                    changed()
                } else {
                    pending = now
                }
            } else {
                pending = nil
            }
        }
    }
}
