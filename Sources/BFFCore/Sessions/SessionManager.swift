import Crypto

/// A session as loaded for one request, plus what is needed to write it back.
public struct LoadedSession: Sendable {
    /// How the session is held.
    public enum Handle: Sendable {
        /// Server-side: the store key and the per-session key from the ticket.
        case server(storeKey: [UInt8], sessionKey: SymmetricKey)
        /// In the cookie, split into `chunks` cookies.
        case cookie(chunks: Int)
    }

    /// The session.
    public var session: Session
    /// Where it lives.
    public let handle: Handle
    /// Server-side: the stored ciphertext this copy was read from, so a write-back does not undo a
    /// newer write (a refresh on another request or instance).
    var storedSealed: [UInt8]?

    init(session: Session, handle: Handle, storedSealed: [UInt8]? = nil) {
        self.session = session
        self.handle = handle
        self.storedSealed = storedSealed
    }
}

/// The only place sessions are sealed and opened, for every store and for cookie mode.
///
/// Server-side modes put a *ticket* in the cookie (a random 16-byte session id and a random
/// 32-byte per-session key, sealed with the key ring); the store holds the session sealed with the
/// per-session key under SHA-256(session id). A dump of the store therefore reveals nothing, and a
/// key removed from the ring ends the sessions whose tickets it sealed.
public struct SessionManager: Sendable {
    /// Session settings in effect.
    public let configuration: SessionConfiguration
    let sealer: Sealer
    let store: (any SessionStore)?
    let revocations: RevocationList
    let time: any TimeSource
    let random: any SecureRandom
    /// Sessions opened before, by cookie value (see ``OpenedSessionCache``).
    let opened: OpenedSessionCache
    /// The store, when it can answer lookups without suspending.
    let immediateStore: (any ImmediateSessionLookup)?
    /// `store != nil` and `immediateStore != nil`, once: testing the optionals on every call
    /// copied the stores.
    let hasStore: Bool
    let hasImmediateStore: Bool
    /// Serialises ``exclusively(_:_:)`` per session within the process.
    let exclusiveSections = KeyedAsyncLock<[UInt8]>()

    /// Largest number of cookie chunks in cookie mode.
    public static let maximumChunks = 8
    /// Largest value per chunk (keeps each Set-Cookie under 4 KB with its attributes).
    public static let chunkSize = 3800

    /// Creates a manager. `store` must be non-nil for server-side kinds.
    public init(
        configuration: SessionConfiguration, sealer: Sealer, store: (any SessionStore)?, revocations: RevocationList,
        time: any TimeSource = SystemTimeSource(), random: any SecureRandom = SystemSecureRandom()
    ) {
        self.configuration = configuration
        self.sealer = sealer
        self.store = configuration.store.isServerSide ? store : nil
        self.immediateStore = self.store as? any ImmediateSessionLookup
        self.hasStore = self.store != nil
        self.hasImmediateStore = self.immediateStore != nil
        self.revocations = revocations
        self.time = time
        self.random = random
        // Server-side entries share their ciphertext with the store; cookie-mode keys are the
        // whole sealed cookie, so fewer of them.
        self.opened = OpenedSessionCache(capacity: configuration.store.isServerSide ? 4096 : 1024)
    }

    var idleSeconds: Int64 { configuration.idleTimeout.components.seconds }
    var absoluteSeconds: Int64 { configuration.absoluteTimeout.components.seconds }

    /// The store key of the session with ticket id `id`: its SHA-256. For one frontend of several
    /// (a partitioned sealer), the frontend's name is bound in: the first four bytes are
    /// ``frontendTag(_:)`` (so `bff sessions --frontend` can tell its sessions), the rest the
    /// hash of the name and the id.
    func storeKey(forID id: some Collection<UInt8>) -> [UInt8] {
        guard !sealer.partition.isEmpty else { return Array(SHA256.hash(data: Array(id))) }
        let hash = SHA256.hash(data: Array(sealer.partition.utf8) + [0] + Array(id))
        return Self.frontendTag(sealer.partition) + Array(hash).dropFirst(4)
    }

    /// Whether `record` is one of this frontend's sessions (always, without several frontends).
    public func owns(_ record: SessionRecord) -> Bool {
        sealer.partition.isEmpty || record.key.starts(with: Self.frontendTag(sealer.partition))
    }

    /// The first four bytes of every store key of frontend `name`'s sessions.
    public static func frontendTag(_ name: String) -> [UInt8] {
        Array(SHA256.hash(data: Array("bff-frontend".utf8) + [0] + Array(name.utf8)).prefix(4))
    }

    /// Stores a new session and returns the cookies that name it (and expire any previous one).
    public func create(_ session: Session, replacing previous: LoadedSession?, cookies: CookieHeader) async throws
        -> [SetCookie]
    {
        if let previous { _ = try? await end(previous, cookies: cookies) }
        if let store {
            let id = random.bytes(16)
            let key = random.bytes(32)
            let storeKey = storeKey(forID: id)
            let sessionKey = SymmetricKey(data: key)
            let record = try record(for: session, storeKey: storeKey, sessionKey: sessionKey)
            try await withStoreDeadline(configuration.storeTimeout) { try await store.insert(record) }
            let ticket = try sealer.sealToString(id + key, purpose: .sessionTicket, binding: configuration.cookieName)
            return [sessionCookie(value: ticket, session: session)]
        } else {
            return try cookieModeCookies(for: session, cookies: cookies)
        }
    }

    /// Writes a changed session back (refreshed tokens, sliding renewal); returns cookies to set.
    /// A server-side session changed in the store since it was loaded is left as stored (the
    /// newer write wins: it may hold a rotated refresh token this copy no longer has).
    public func save(_ loaded: inout LoadedSession, cookies: CookieHeader) async throws -> [SetCookie] {
        switch loaded.handle {
        case .server(let storeKey, let sessionKey):
            guard let store else { return [] }
            let record = try record(for: loaded.session, storeKey: storeKey, sessionKey: sessionKey)
            let deadline = configuration.storeTimeout
            if let expected = loaded.storedSealed {
                let replaced = try await withStoreDeadline(deadline) {
                    try await store.replace(record, ifSealed: expected)
                }
                if replaced { loaded.storedSealed = record.sealed }
            } else {
                try await withStoreDeadline(deadline) { try await store.update(record) }
                loaded.storedSealed = record.sealed
            }
            return []
        case .cookie:
            return try cookieModeCookies(for: loaded.session, cookies: cookies)
        }
    }

    /// Seconds between two writes of the sliding renewal: a twentieth of the idle timeout, at least
    /// 60 s, but never more than half the idle timeout (else a short idle timeout would never slide).
    public var slideInterval: Int64 { min(max(60, idleSeconds / 20), max(1, idleSeconds / 2)) }

    /// Whether a request on `session` now should renew its idle timeout (see ``slide(_:cookies:)``).
    public func isDueForSlide(_ session: Session) -> Bool {
        time.now - session.renewedAt >= slideInterval
    }

    /// Slides the idle timeout if ``slideInterval`` has passed since the last renewal, so that not
    /// every request writes. Returns cookies to set (cookie mode).
    public func slide(_ loaded: inout LoadedSession, cookies: CookieHeader) async -> [SetCookie] {
        guard isDueForSlide(loaded.session) else { return [] }
        loaded.session.renewedAt = time.now
        return (try? await save(&loaded, cookies: cookies)) ?? []
    }

    /// Runs `body` on the freshest stored copy of a server-side session while no other
    /// `exclusively` call for it runs — across instances when the store is shared (PostgreSQL) —
    /// and stores the session `body` returns, if any. Returns nil when the session is gone.
    public func exclusively<T: Sendable>(
        _ loaded: LoadedSession, _ body: @escaping @Sendable (Session) async throws -> (Session?, T)
    ) async throws -> T? {
        guard case .server(let storeKey, let sessionKey) = loaded.handle, let store else {
            let (_, result) = try await body(loaded.session)
            return result
        }
        let manager = self
        return try await exclusiveSections.withLock(storeKey) {
            try await manager.exclusivelyInStore(store, storeKey: storeKey, sessionKey: sessionKey, body)
        }
    }

    private func exclusivelyInStore<T: Sendable>(
        _ store: any SessionStore, storeKey: [UInt8], sessionKey: SymmetricKey,
        _ body: @escaping @Sendable (Session) async throws -> (Session?, T)
    ) async throws -> T? {
        let manager = self
        return try await store.exclusively(key: storeKey, now: time.now) { record -> (SessionRecord?, T?) in
            guard let record,
                let plaintext = SessionManager.openRecord(record.sealed, key: sessionKey, storeKey: storeKey),
                let session = Session(encoded: plaintext)
            else { return (nil, nil) }
            let (changed, result) = try await body(session)
            return (try changed.map { try manager.record(for: $0, storeKey: storeKey, sessionKey: sessionKey) }, result)
        }
    }

    /// Ends a session: deletes it from the store (or records its revocation in cookie mode) and
    /// returns cookies that clear the browser's copy.
    /// - Throws: ``SessionStoreUnavailable`` when the store could not delete it (the caller keeps
    ///   the cookie: clearing it would leave a live session behind in the store).
    public func end(_ loaded: LoadedSession?, cookies: CookieHeader) async throws -> [SetCookie] {
        if let loaded {
            switch loaded.handle {
            case .server(let storeKey, _):
                if let store {
                    _ = try await withStoreDeadline(configuration.storeTimeout) {
                        try await store.remove(key: storeKey)
                    }
                }
            case .cookie:
                revocations.revoke(logoutID: loaded.session.logoutID, at: time.now)
            }
        }
        return clearingCookies(cookies: cookies)
    }

    /// Cookies that delete the session cookie and every chunk present in the request.
    public func clearingCookies(cookies: CookieHeader) -> [SetCookie] {
        var names = [configuration.cookieName]
        for (name, _) in cookies.pairs(withPrefix: configuration.cookieName + ".") where !names.contains(name) {
            names.append(name)
        }
        return names.map { expire($0) }
    }

    /// Ends every session of `issuer` with this IdP `sid` or `sub`; returns the ended sessions'
    /// token sets (for refresh-token revocation) where they can be read.
    public func endSessions(issuer: String, idpSessionID: String?, subject: String?) async throws -> [SessionRecord] {
        let now = time.now
        if let store {
            return try await withStoreDeadline(configuration.storeTimeout) {
                try await store.removeAll(issuer: issuer, idpSessionID: idpSessionID, subject: subject)
            }
        }
        if let idpSessionID { revocations.revoke(issuer: issuer, idpSessionID: idpSessionID, at: now) }
        if let subject, idpSessionID == nil { revocations.revoke(issuer: issuer, subject: subject, at: now) }
        return []
    }

    // MARK: - helpers

    func record(for session: Session, storeKey: [UInt8], sessionKey: SymmetricKey) throws -> SessionRecord {
        let box = try AES.GCM.seal(session.encoded(), using: sessionKey, authenticating: storeKey)
        guard let combined = box.combined else { throw SessionError.sealing }
        return SessionRecord(
            key: storeKey, sealed: Array(combined), subject: session.subject, idpSessionID: session.idpSessionID,
            issuer: session.issuer, createdAt: session.createdAt, renewedAt: session.renewedAt,
            expiresAt: session.expiresAt(idleTimeout: idleSeconds, absoluteTimeout: absoluteSeconds),
            revocationSeal: try session.tokens.refreshToken.map {
                try sealer.seal(Array($0.utf8), purpose: .atRest, binding: SessionManager.revocationBinding)
            })
    }

    static let revocationBinding = "refresh-token-revocation"

    /// The refresh tokens of ended records that this gateway's keys can open.
    public func refreshTokens(of records: [SessionRecord]) -> [String] {
        records.compactMap { record in
            record.revocationSeal
                .flatMap { sealer.open($0, purpose: .atRest, binding: SessionManager.revocationBinding) }
                .flatMap { String(validating: $0, as: UTF8.self) }
        }
    }

    func sessionCookie(name: String? = nil, value: String, session: Session) -> SetCookie {
        var cookie = SetCookie(
            name: name ?? configuration.cookieName, value: value,
            maxAge: max(1, session.createdAt + absoluteSeconds - time.now), sameSite: configuration.sameSite)
        cookie.secure = configuration.secureCookies
        cookie.path = configuration.cookiePath
        return cookie
    }

    func expire(_ name: String) -> SetCookie {
        var cookie = SetCookie.expired(name: name, sameSite: configuration.sameSite)
        cookie.secure = configuration.secureCookies
        cookie.path = configuration.cookiePath
        return cookie
    }

    /// Cookie mode: the base cookie holds `<chunk count>.<first chunk>`, the others `name.1`… hold
    /// the rest, in order.
    func cookieModeCookies(for session: Session, cookies: CookieHeader) throws -> [SetCookie] {
        let sealed = try sealer.sealToString(
            session.encoded(), purpose: .sessionCookie, binding: configuration.cookieName)
        let bytes = Array(sealed.utf8)
        let chunkCount = (bytes.count + SessionManager.chunkSize - 1) / SessionManager.chunkSize
        guard chunkCount <= SessionManager.maximumChunks else { throw SessionError.tooLargeForCookies(bytes.count) }
        var result: [SetCookie] = []
        for index in 0..<chunkCount {
            let slice = bytes[
                (index * SessionManager.chunkSize)..<min(bytes.count, (index + 1) * SessionManager.chunkSize)]
            let chunk = String(decoding: slice, as: UTF8.self)
            if index == 0 {
                result.append(sessionCookie(value: "\(chunkCount).\(chunk)", session: session))
            } else {
                result.append(
                    sessionCookie(name: "\(configuration.cookieName).\(index)", value: chunk, session: session))
            }
        }
        for (name, _) in cookies.pairs(withPrefix: configuration.cookieName + ".") {
            if let index = Int(name.dropFirst(configuration.cookieName.count + 1)), index >= chunkCount {
                result.append(expire(name))
            }
        }
        return result
    }
}

/// Why a session could not be written.
public struct SessionError: Error, CustomStringConvertible {
    private enum Base {
        case sealing
        case tooLarge(Int)
    }
    private let base: Base
    static let sealing = SessionError(base: .sealing)
    static func tooLargeForCookies(_ bytes: Int) -> SessionError { SessionError(base: .tooLarge(bytes)) }

    /// Whether the session did not fit into the cookie chunks allowed in cookie mode.
    public var isTooLargeForCookies: Bool {
        if case .tooLarge = base { return true }
        return false
    }

    /// A description without secrets.
    public var description: String {
        switch base {
        case .sealing: return "sealing the session failed"
        case .tooLarge(let bytes):
            return
                "the session needs \(bytes) bytes, more than \(SessionManager.maximumChunks) cookies hold; use a server-side store (session.store: memory)"
        }
    }
}
