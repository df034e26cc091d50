import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `bff reload --config FILE`: validates the file here (printing every problem, exit 1) and then
/// asks the running gateway — the pid in the configuration's data directory — to reload it
/// (SIGHUP). The gateway validates again and logs the outcome; a refused reload keeps it running
/// on the old configuration.
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload", abstract: "Validate the configuration file and make the running gateway reload it.")

    @Option(name: .long, help: "Path of the YAML configuration.")
    var config: String

    func run() throws {
        let configuration = try CommandSupport.loadConfiguration(path: config)  // problems go to stderr
        let pidFile = PIDFile(directory: configuration.dataDirectory)
        guard let pid = pidFile.read() else {
            CommandSupport.printError(
                "\(pidFile.path): no running gateway found (fix: start it with `bff serve --config \(config)`)")
            throw ExitCode(1)
        }
        guard kill(pid, SIGHUP) == 0 else {
            CommandSupport.printError(
                "gateway \(pid) (from \(pidFile.path)) cannot be signalled: \(String(cString: strerror(errno))) "
                    + "(fix: run as the gateway's user, or remove the stale pid file)")
            throw ExitCode(1)
        }
        print("ok: asked gateway \(pid) to reload \(config); its log has the outcome")  // justified: the result
    }
}

/// `<dataDirectory>/bff.pid`: the running `bff serve`'s process id, for `bff reload`.
struct PIDFile {
    let path: String

    init(directory: String) {
        self.path = directory + "/bff.pid"
    }

    func write() throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data("\(getpid())\n".utf8), attributes: [.posixPermissions: 0o644])
        else {
            throw ProblemList([
                .init(path: "server.dataDirectory", message: "cannot write \(path)", fix: "make the directory writable")
            ])
        }
    }

    /// The pid, when the file names a live `bff serve` (on Linux its command line is checked: a
    /// stale file whose pid was reused by another program is not signalled).
    func read() -> pid_t? {
        guard let data = FileManager.default.contents(atPath: path),
            let pid = pid_t(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
            pid > 1, kill(pid, 0) == 0 || errno == EPERM
        else { return nil }
        #if os(Linux)
            guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.count >= 2, arguments.dropFirst().contains("serve") else { return nil }
        #endif
        return pid
    }

    /// Removes the file if it still names this process.
    func remove() {
        if read() == getpid() { try? FileManager.default.removeItem(atPath: path) }
    }
}
