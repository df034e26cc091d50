import BFFCore
import BFFHummingbird
import Foundation
import Logging
import Synchronization

/// Reloads the configuration file into the running gateway (SPEC §11.3): the whole file is read
/// and validated first; on any problem the running configuration stays and every problem is
/// logged with its fix; on success the new frontends replace the old ones at once — requests in
/// flight finish on the frontend they started with, new ones get the new configuration.
///
/// What a running process cannot change (its listeners, the session store, telemetry, logging,
/// the data directory) is compared, and a change is a problem that names the restart it needs.
/// Keys can be added and rotated; removing the key that seals today's cookies is refused.
/// A frontend whose effective configuration did not change keeps its BFF (its caches, its
/// in-flight refreshes), so a reload that adds one frontend leaves the others untouched.
final class ConfigurationReloader: Sendable {
    struct State: Sendable {
        var configuration: GatewayConfiguration
        var keyRing: KeyRing
        /// Frontends retired by reloads, with when they were retired (their background work drains).
        var retired: [GatewayFrontend] = []
        var reloads = 0
    }

    let path: String
    let environment: @Sendable () -> [String: String]
    let builder: FrontendBuilder
    let frontends: ActiveFrontends
    let logger: Logger
    private let state: Mutex<State>
    /// One reload at a time (SIGHUP, the file watch and the admin endpoint may race).
    private let serial = KeyedAsyncLock<Int>()

    init(
        path: String, configuration: GatewayConfiguration, keyRing: KeyRing, builder: FrontendBuilder,
        frontends: ActiveFrontends, logger: Logger,
        environment: @escaping @Sendable () -> [String: String] = { ProcessInfo.processInfo.environment }
    ) {
        self.path = path
        self.environment = environment
        self.builder = builder
        self.frontends = frontends
        self.logger = logger
        self.state = Mutex(State(configuration: configuration, keyRing: keyRing))
    }

    /// The configuration in service.
    var configuration: GatewayConfiguration { state.withLock { $0.configuration } }
    /// Successful reloads so far.
    var reloads: Int { state.withLock { $0.reloads } }

    /// The outcome of one reload.
    enum Outcome: Sendable, Equatable {
        /// Applied: the names of the frontends added, changed and removed.
        case applied(added: [String], changed: [String], removed: [String])
        /// Nothing the file (and the secrets it names) configures has changed: nothing to do.
        case unchanged
        /// Refused: the running configuration stays.
        case refused([ConfigurationProblem])
    }

    /// Reads, validates and — when everything is in order — applies the file.
    @discardableResult
    func reload(reason: String) async -> Outcome {
        let outcome: Outcome
        do {
            outcome = try await serial.withLock(0) { await self.reloadOnce() }
        } catch {
            outcome = .refused([.init(path: "(reload)", message: "\(error)", fix: "try again")])
        }
        switch outcome {
        case .applied(let added, let changed, let removed):
            logger.notice(
                "configuration reloaded",
                metadata: [
                    "bff.reason": .string(reason), "bff.config": .string(path),
                    "bff.frontends_added": .string(added.joined(separator: " ")),
                    "bff.frontends_changed": .string(changed.joined(separator: " ")),
                    "bff.frontends_removed": .string(removed.joined(separator: " ")),
                ])
        case .unchanged:
            logger.info(
                "configuration file unchanged", metadata: ["bff.reason": .string(reason), "bff.config": .string(path)])
        case .refused(let problems):
            logger.error(
                "configuration reload refused: the running configuration stays",
                metadata: [
                    "bff.reason": .string(reason), "bff.config": .string(path), "bff.problems": "\(problems.count)",
                ])
            for problem in problems {
                logger.error(
                    "configuration problem",
                    metadata: [
                        "bff.config": .string(path), "bff.key": .string(problem.path),
                        "bff.problem": .string(problem.message), "bff.fix": .string(problem.fix),
                    ])
            }
        }
        return outcome
    }

    private func reloadOnce() async -> Outcome {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .refused([
                .init(path: "(file)", message: "\(path) cannot be read", fix: "check the file and its permissions")
            ])
        }
        let environment = self.environment()
        let source = ConfigurationSource(path: path, contents: data, environment: environment)
        let current = state.withLock { $0 }
        // (Not skipped when the file's bytes are the same: a `file:` secret it names may have changed.)
        var next: GatewayConfiguration
        switch GatewayConfigurationLoader.load(yaml: String(decoding: data, as: UTF8.self), environment: environment) {
        case .success(let loaded): next = loaded
        case .failure(let list): return .refused(list.problems)
        }
        next.source = source
        var problems = Self.restartOnlyChanges(from: current.configuration, to: next)
        let keyRing: KeyRing
        do {
            keyRing = try Self.keyRing(for: next, replacing: current.keyRing, current: current.configuration)
        } catch let list as ProblemList {
            return .refused(problems + list.problems)
        } catch {
            return .refused(problems + [.init(path: "keys", message: "\(error)", fix: "check the keys")])
        }
        if !problems.isEmpty { return .refused(problems) }

        // Build every frontend first; only a complete set is put in service.
        var builder = self.builder
        builder.keyRing = keyRing
        let keysChanged = keyRing.keyIDs != current.keyRing.keyIDs
        let old = frontends.current.frontends
        var built: [GatewayFrontend] = []
        var added: [String] = []
        var changed: [String] = []
        do {
            for settings in builder.effectiveFrontends(next) {
                if !keysChanged,
                    let same = old.first(where: {
                        $0.name == settings.name && $0.match == settings.match
                            && $0.digest == FrontendBuilder.digest(settings.bff)
                    })
                {
                    built.append(same)  // unchanged: keeps its BFF and everything it holds
                    continue
                }
                built.append(try builder.frontend(name: settings.name, match: settings.match, settings: settings.bff))
                if old.contains(where: { $0.name == settings.name }) {
                    changed.append(settings.name)
                } else {
                    added.append(settings.name)
                }
            }
        } catch let list as ProblemList {
            problems += list.problems
        } catch let error as BFFSetupError {
            problems += error.problems
        } catch {
            problems.append(.init(path: "(reload)", message: "\(error)", fix: "check the configuration"))
        }
        if !frontends.upgrades, built.contains(where: { !$0.webSockets.isEmpty }) {
            problems.append(
                .init(
                    path: "apis", message: "adds the first WebSocket route or dev server: the listener has no upgrades",
                    fix: "restart the gateway for this change"))
        }
        if !problems.isEmpty { return .refused(problems) }
        // Cookie mode: the stored revocation records apply before the new frontends serve anyone.
        // (Frontends share one revocation list; a new BFF restores into it, which is idempotent.)
        for frontend in built where !old.contains(where: { $0.bff.revoker === frontend.bff.revoker }) {
            do {
                try await frontend.bff.restoreRevocations()
            } catch {
                return .refused([
                    .init(
                        path: "session.store", message: "revocation records could not be read: \(error)",
                        fix: "check the store and reload again")
                ])
            }
        }
        let removed = old.map(\.name).filter { name in !built.contains { $0.name == name } }
        if added.isEmpty && changed.isEmpty && removed.isEmpty && !keysChanged {
            // Every frontend, secrets included, is what it was (a comment may have changed: the
            // file's fingerprint in `GET /config` follows it).
            frontends.replace(old, source: source)
            state.withLock { $0.configuration = next }
            return .unchanged
        }
        let retired = old.filter { frontend in !built.contains { $0.bff.revoker === frontend.bff.revoker } }
        frontends.replace(built, source: source)
        state.withLock {
            $0.configuration = next
            $0.keyRing = keyRing
            $0.retired += retired
            $0.reloads += 1
        }
        return .applied(added: added, changed: changed, removed: removed)
    }

    /// Frontends retired by reloads since the last call (their background work is to be drained).
    func takeRetired() -> [GatewayFrontend] {
        state.withLock { state in
            defer { state.retired = [] }
            return state.retired
        }
    }

    /// Settings a running process keeps until it restarts: a change to one is a problem.
    static func restartOnlyChanges(from old: GatewayConfiguration, to new: GatewayConfiguration)
        -> [ConfigurationProblem]
    {
        var problems: [ConfigurationProblem] = []
        func check(_ path: String, _ same: Bool) {
            if !same {
                problems.append(
                    .init(
                        path: path, message: "cannot change while the gateway runs",
                        fix: "restart the gateway for this change, or put the old value back and reload"))
            }
        }
        let (a, b) = (old.bff, new.bff)
        check("server.listen", a.server.host == b.server.host && a.server.port == b.server.port)
        check("server.maxHeaderBytes", a.server.maxHeaderBytes == b.server.maxHeaderBytes)
        check("server.idleTimeout", a.server.idleTimeout == b.server.idleTimeout)
        check("server.shutdownGrace", a.server.shutdownGrace == b.server.shutdownGrace)
        check("admin.listen", a.admin.listen == b.admin.listen)
        check("session.store", a.session.store == b.session.store)
        check("session.sqlite.path", old.effectiveSQLitePath == new.effectiveSQLitePath)
        check("session.postgres.url", String(describing: old.postgres) == String(describing: new.postgres))
        check("server.dataDirectory", old.dataDirectory == new.dataDirectory)
        check("telemetry", old.telemetry == new.telemetry)
        check("logging", old.logging == new.logging)
        check("config.watch", old.watch == new.watch)
        // One frontend or several: session keys are partitioned by frontend name and metric
        // families carry a `frontend` label only with several (a family cannot mix both).
        check("frontends", old.frontends.isEmpty == new.frontends.isEmpty)
        // The TLS transport loads CA files once, at start (a route may drop one, not add one).
        let oldCAs = Set(old.effectiveFrontends.flatMap(\.apis).compactMap(\.caFile))
        for (index, frontend) in new.effectiveFrontends.enumerated() {
            for (route, api) in frontend.apis.enumerated() {
                if let file = api.caFile, !oldCAs.contains(file) {
                    let path = new.frontends.isEmpty ? "apis[\(route)]" : "frontends[\(index)].apis[\(route)]"
                    problems.append(
                        .init(
                            path: path + ".caFile", message: "'\(file)' is new: CA files are loaded at start",
                            fix: "restart the gateway for this change"))
                }
            }
        }
        return problems
    }

    /// The new key ring: keys may be added, reordered (the first seals) and dropped, but the key
    /// that seals today's cookies must stay (else every session ends at once), and a key id keeps
    /// its secret.
    static func keyRing(for new: GatewayConfiguration, replacing ring: KeyRing, current: GatewayConfiguration)
        throws -> KeyRing
    {
        if new.bff.keys.isEmpty && current.bff.keys.isEmpty { return ring }  // the generated key, unchanged
        guard !new.bff.keys.isEmpty else {
            throw ProblemList([
                .init(
                    path: "keys", message: "would fall back to a generated key and end every session",
                    fix: "keep the configured keys")
            ])
        }
        var problems: [ConfigurationProblem] = []
        if let active = ring.keyIDs.first, !new.bff.keys.contains(where: { $0.id == active }) {
            problems.append(
                .init(
                    path: "keys", message: "removes the active key '\(active)', which seals today's sessions",
                    fix: "list '\(active)' after the new key, and remove it in a later reload once its sessions ended"))
        }
        for (index, key) in new.bff.keys.enumerated() {
            if let old = current.bff.keys.first(where: { $0.id == key.id }), old.secret != key.secret {
                problems.append(
                    .init(
                        path: "keys[\(index)].secret", message: "key '\(key.id)' has a new secret",
                        fix: "give a new secret a new id"))
            }
        }
        if !problems.isEmpty { throw ProblemList(problems) }
        return try KeyRing(keys: new.bff.keys)
    }
}
