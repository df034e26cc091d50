#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An exclusive lock on a file beside the SQLite session database, held while `bff serve` runs.
///
/// One gateway per SQLite file: the refresh single flight, the lost-update protection and the
/// one-second view of confirmed sessions all assume that no other gateway writes the file (the
/// `bff sessions` command may; it takes no lock). Several instances belong on PostgreSQL, and a
/// second `bff serve` on the same file is refused at startup instead of risking a refresh token
/// spent twice. The lock goes with the process (`flock`), so a crashed gateway never leaves it behind.
final class SQLiteOwnerLock: Sendable {
    let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Takes the lock for `databasePath`, or throws a configuration problem naming the fix.
    static func acquire(databasePath: String) throws -> SQLiteOwnerLock {
        let path = databasePath + ".gateway-lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ProblemList([
                .init(
                    path: "session.sqlite.path", message: "cannot create \(path) (errno \(errno))",
                    fix: "make its folder writable by the gateway")
            ])
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw ProblemList([
                .init(
                    path: "session.sqlite.path", message: "another bff serve is using \(databasePath)",
                    fix:
                        "give each gateway its own session.sqlite.path, or use session.store: postgres for several instances"
                )
            ])
        }
        return SQLiteOwnerLock(path: path, descriptor: descriptor)
    }

    /// Releases the lock (also released when the process ends).
    func release() {
        close(descriptor)
    }
}
