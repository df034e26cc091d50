import Crypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// Reading sessions: from the ticket cookie and the store (server-side kinds) or from the sealed
// cookie chunks (cookie mode), with the cache of opened sessions in front of the decryption.
extension SessionManager {
    /// Loads the session named by the request's cookies. Any malformed, tampered, unknown, expired
    /// or revoked cookie means "no session" — never an error.
    /// - Throws: ``SessionStoreUnavailable`` when a valid ticket was presented and the store failed
    ///   or did not answer within `session.storeTimeout` — never taken as "no session".
    public func load(cookies: CookieHeader) async throws -> LoadedSession? {
        let now = time.now
        if let store {
            guard let ticket = openTicket(cookies) else { return nil }
            let storeKey = ticket.storeKey
            switch immediateStore?.findImmediately(key: storeKey, now: now) {
            case .found(let record): return open(record, named: ticket, now: now)
            case .absent: return open(nil, named: ticket, now: now)
            case .unknown, nil: break
            }
            let record = try await withStoreDeadline(configuration.storeTimeout) {
                try await store.find(key: storeKey, now: now)
            }
            return open(record, named: ticket, now: now)
        }
        return openCookie(cookies, now: now)
    }

    /// What a synchronous load found.
    public enum ImmediateLoad {
        /// No valid session in the cookies.
        case anonymous
        /// The session.
        case session(LoadedSession)
        /// The store can only be read asynchronously: use ``load(cookies:)``.
        case unavailable
    }

    /// ``load(cookies:)`` without suspending, for stores that can answer at once (memory) and
    /// cookie mode; `.unavailable` for the others. Same checks, same results.
    public func loadImmediately(cookies: CookieHeader) -> ImmediateLoad {
        let now = time.now
        if hasStore {
            guard hasImmediateStore else { return .unavailable }
            guard let ticket = openTicket(cookies) else { return .anonymous }
            let record: SessionRecord?
            switch immediateStore?.findImmediately(key: ticket.storeKey, now: now) {
            case .found(let found): record = found
            case .absent: record = nil
            case .unknown, nil: return .unavailable
            }
            return open(record, named: ticket, now: now).map { .session($0) } ?? .anonymous
        }
        return openCookie(cookies, now: now).map { .session($0) } ?? .anonymous
    }

    /// A server-side session's ticket, opened (or found in the cache of opened sessions).
    struct OpenedTicket {
        let cookieValue: [UInt8]
        let storeKey: [UInt8]
        let sessionKey: SymmetricKey
        let cached: OpenedSessionCache.ServerEntry?
    }

    func openTicket(_ cookies: CookieHeader) -> OpenedTicket? {
        guard let slice = cookies.value(named: configuration.cookieName) else { return nil }
        let value = Array(slice)
        if let hit = opened.server(value) {
            return OpenedTicket(cookieValue: value, storeKey: hit.storeKey, sessionKey: hit.sessionKey, cached: hit)
        }
        guard let ticket = sealer.open(base64URL: value, purpose: .sessionTicket, binding: configuration.cookieName),
            ticket.count == 48
        else { return nil }
        return OpenedTicket(
            cookieValue: value, storeKey: storeKey(forID: ticket[0..<16]),
            sessionKey: SymmetricKey(data: ticket[16..<48]), cached: nil)
    }

    /// The session in `record` (read from the store under `ticket`'s key), if it opens and is current.
    func open(_ record: SessionRecord?, named ticket: OpenedTicket, now: UnixTime) -> LoadedSession? {
        guard let record else {
            if ticket.cached != nil { opened.forget(ticket.cookieValue) }
            return nil
        }
        let session: Session
        if let cached = ticket.cached, ByteKey.same(cached.sealed, record.sealed) {
            session = cached.session
        } else {
            guard
                let plaintext = SessionManager.openRecord(
                    record.sealed, key: ticket.sessionKey, storeKey: ticket.storeKey),
                let decoded = Session(encoded: plaintext)
            else { return nil }
            session = decoded
            opened.remember(
                ticket.cookieValue,
                OpenedSessionCache.ServerEntry(
                    storeKey: ticket.storeKey, sessionKey: ticket.sessionKey, sealed: record.sealed, session: decoded))
        }
        guard isCurrent(session, now: now) else { return nil }
        return LoadedSession(
            session: session, handle: .server(storeKey: ticket.storeKey, sessionKey: ticket.sessionKey),
            storedSealed: record.sealed)
    }

    /// Cookie mode: the session sealed in the request's cookies, if it opens, is current and is not revoked.
    func openCookie(_ cookies: CookieHeader, now: UnixTime) -> LoadedSession? {
        guard let (joined, chunks) = joinChunks(cookies) else { return nil }
        let session: Session
        if let cached = opened.cookie(joined), cached.chunks == chunks {
            session = cached.session
        } else {
            guard
                let plaintext = sealer.open(
                    base64URL: joined, purpose: .sessionCookie, binding: configuration.cookieName),
                let decoded = Session(encoded: plaintext)
            else { return nil }
            session = decoded
            opened.remember(joined, OpenedSessionCache.CookieEntry(chunks: chunks, session: decoded))
        }
        guard isCurrent(session, now: now), !revocations.isRevoked(session) else { return nil }
        return LoadedSession(session: session, handle: .cookie(chunks: chunks))
    }

    /// The current time of this manager's clock.
    public var now: UnixTime { time.now }

    func isCurrent(_ session: Session, now: UnixTime) -> Bool {
        session.expiresAt(idleTimeout: idleSeconds, absoluteTimeout: absoluteSeconds) > now
            && session.createdAt <= now + 300
    }

    static func openRecord(_ sealed: [UInt8], key: SymmetricKey, storeKey: [UInt8]) -> [UInt8]? {
        guard let box = try? AES.GCM.SealedBox(combined: sealed) else { return nil }
        return (try? AES.GCM.open(box, using: key, authenticating: storeKey)).map { Array($0) }
    }

    func joinChunks(_ cookies: CookieHeader) -> ([UInt8], Int)? {
        guard let first = cookies.value(named: configuration.cookieName),
            let dot = first.firstIndex(of: UInt8(ascii: ".")), dot > first.startIndex
        else { return nil }
        var count = 0
        for byte in first[first.startIndex..<dot] {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            count = count * 10 + Int(byte - 0x30)
            if count > SessionManager.maximumChunks { return nil }
        }
        guard count >= 1 else { return nil }
        var joined = Array(first[(dot + 1)...])
        for index in 1..<max(1, count) {
            guard let chunk = cookies.value(named: "\(configuration.cookieName).\(index)") else { return nil }
            joined.append(contentsOf: chunk)
        }
        return (joined, count)
    }
}
