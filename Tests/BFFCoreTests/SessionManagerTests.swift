import BFFCore
import Testing

@Suite("Session manager")
struct SessionManagerTests {
    let time = ManualTimeSource(now: 1_800_000_000)
    static let key1 = KeyRing.Key(id: "k1", secret: Array(repeating: 1, count: 32))
    static let key2 = KeyRing.Key(id: "k2", secret: Array(repeating: 2, count: 32))

    func manager(
        _ kind: SessionStoreKind, keys: [KeyRing.Key] = [key1], store: MemorySessionStore = MemorySessionStore()
    ) throws
        -> SessionManager
    {
        var configuration = SessionConfiguration(store: kind)
        configuration.idleTimeout = .seconds(3600)
        configuration.absoluteTimeout = .seconds(86400)
        return SessionManager(
            configuration: configuration, sealer: Sealer(keyRing: try KeyRing(keys: keys)), store: store,
            revocations: RevocationList(retention: 86400), time: time)
    }

    func session(claimsSize: Int = 64) -> Session {
        Session(
            issuer: "https://idp.test", subject: "alice", idpSessionID: "sid-1", logoutID: "sid-1",
            claimsJSON: Array("{\"sub\":\"alice\",\"pad\":\"\(String(repeating: "x", count: claimsSize))\"}".utf8),
            tokens: TokenSet(
                accessToken: "AT-secret-123", accessTokenExpiresAt: time.now + 300, tokenType: "Bearer",
                refreshToken: "RT-secret-456", idToken: "ID-token-789"),
            createdAt: time.now, renewedAt: time.now)
    }

    func header(_ cookies: [SetCookie]) -> CookieHeader {
        CookieHeader(fields: [
            cookies.filter { $0.maxAge != 0 }.map { "\($0.name)=\($0.value)" }.joined(separator: "; ")
        ])
    }

    @Test(arguments: [SessionStoreKind.memory, .cookie])
    func roundTrip(_ kind: SessionStoreKind) async throws {
        let manager = try manager(kind)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        let loaded = try await manager.load(cookies: header(cookies))
        #expect(loaded?.session == session())
    }

    @Test func serverStoreHoldsNoPlaintext() async throws {
        let store = MemorySessionStore()
        let manager = try manager(.memory, store: store)
        _ = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        let records = try await store.removeExpired(now: .max)
        #expect(records.count == 1)
        for secret in ["AT-secret-123", "RT-secret-456", "ID-token-789", "alice\",\"pad"] {
            #expect(!records[0].sealed.contains(subsequence: Array(secret.utf8)))
        }
    }

    @Test func ticketDoesNotRevealTheSession() async throws {
        let cookies = try await manager(.memory).create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        #expect(cookies.count == 1)
        #expect(cookies[0].value.utf8.count < 120)
        #expect(cookies[0].headerValue.contains("Secure; HttpOnly; SameSite=Strict"))
    }

    @Test(arguments: [SessionStoreKind.memory, .cookie])
    func idleTimeoutEndsTheSession(_ kind: SessionStoreKind) async throws {
        let manager = try manager(kind)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        time.advance(by: 3599)
        #expect(try await manager.load(cookies: header(cookies)) != nil)
        time.advance(by: 2)
        #expect(try await manager.load(cookies: header(cookies)) == nil)
    }

    @Test func slidingKeepsItAliveUntilTheAbsoluteTimeout() async throws {
        let manager = try manager(.memory)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        for _ in 0..<30 {
            time.advance(by: 3000)
            guard var loaded = try await manager.load(cookies: header(cookies)) else { break }
            _ = await manager.slide(&loaded, cookies: header(cookies))
        }
        #expect(time.now - 1_800_000_000 > 86400)
        #expect(try await manager.load(cookies: header(cookies)) == nil)
    }

    @Test(arguments: [SessionStoreKind.memory, .cookie])
    func tamperedCookieIsAnonymous(_ kind: SessionStoreKind) async throws {
        let manager = try manager(kind)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        var value = Array(cookies[0].value.utf8)
        value[value.count / 2] = value[value.count / 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tampered = CookieHeader(fields: ["\(cookies[0].name)=\(String(decoding: value, as: UTF8.self))"])
        #expect(try await manager.load(cookies: tampered) == nil)
    }

    @Test(arguments: [
        "", "x", "1.", "9.AAAA", "0.AAAA", "99999999999999999999.AAAA", String(repeating: "A", count: 10000),
    ])
    func garbageCookiesAreAnonymous(_ value: String) async throws {
        for kind in [SessionStoreKind.memory, .cookie] {
            let manager = try manager(kind)
            #expect(try await manager.load(cookies: CookieHeader(fields: ["__Host-bff-session=\(value)"])) == nil)
        }
    }

    @Test func keyRotationKeepsSessionsAndRemovalEndsThem() async throws {
        let store = MemorySessionStore()
        let cookies = try await manager(.memory, keys: [Self.key1], store: store).create(
            session(), replacing: nil, cookies: CookieHeader(bytes: []))
        #expect(
            try await (try manager(.memory, keys: [Self.key2, Self.key1], store: store)).load(cookies: header(cookies))
                != nil)
        #expect(try await (try manager(.memory, keys: [Self.key2], store: store)).load(cookies: header(cookies)) == nil)
    }

    @Test func cookieModeChunksLargeSessions() async throws {
        let manager = try manager(.cookie)
        let big = session(claimsSize: 9000)
        let cookies = try await manager.create(big, replacing: nil, cookies: CookieHeader(bytes: []))
        #expect(cookies.count >= 3)
        #expect(cookies.allSatisfy { $0.headerValue.utf8.count < 4096 })
        #expect(try await manager.load(cookies: header(cookies))?.session == big)
        // A missing chunk makes it anonymous.
        #expect(try await manager.load(cookies: header(Array(cookies.dropLast()))) == nil)
    }

    @Test func cookieModeRefusesTooLargeSessions() async throws {
        await #expect(throws: SessionError.self) {
            _ = try await manager(.cookie).create(
                session(claimsSize: 40_000), replacing: nil, cookies: CookieHeader(bytes: []))
        }
    }

    @Test func cookieModeLogoutRevokesReplayedCookie() async throws {
        let manager = try manager(.cookie)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        let loaded = try #require(try await manager.load(cookies: header(cookies)))
        let cleared = try await manager.end(loaded, cookies: header(cookies))
        #expect(cleared.allSatisfy { $0.maxAge == 0 })
        #expect(try await manager.load(cookies: header(cookies)) == nil, "a replayed cookie stays anonymous")
    }

    @Test func serverModeLogoutDeletes() async throws {
        let store = MemorySessionStore()
        let manager = try manager(.memory, store: store)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        let loaded = try #require(try await manager.load(cookies: header(cookies)))
        _ = try await manager.end(loaded, cookies: header(cookies))
        #expect(await store.count == 0)
        #expect(try await manager.load(cookies: header(cookies)) == nil)
    }

    @Test func endSessionsBySidAndSub() async throws {
        let store = MemorySessionStore()
        let manager = try manager(.memory, store: store)
        _ = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        #expect(try await manager.endSessions(issuer: "https://other", idpSessionID: "sid-1", subject: nil).isEmpty)
        let ended = try await manager.endSessions(issuer: "https://idp.test", idpSessionID: "sid-1", subject: nil)
        #expect(ended.count == 1)
        #expect(manager.refreshTokens(of: ended) == ["RT-secret-456"], "the gateway's keys open the revocation seal")
    }

    // The cache of opened sessions must never answer for the store or the revocation list.

    @Test func openedSessionsFollowTheStoredRecord() async throws {
        let store = MemorySessionStore()
        let manager = try manager(.memory, store: store)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        var loaded = try #require(try await manager.load(cookies: header(cookies)))
        loaded.session.tokens.accessToken = "AT-rotated"
        _ = try await manager.save(&loaded, cookies: header(cookies))
        #expect(try await manager.load(cookies: header(cookies))?.session.tokens.accessToken == "AT-rotated")
        guard case .session(let immediate) = manager.loadImmediately(cookies: header(cookies)) else {
            Issue.record("no session")
            return
        }
        #expect(immediate.session.tokens.accessToken == "AT-rotated")
    }

    @Test func aTamperedRecordIsNotServedFromTheCache() async throws {
        let store = MemorySessionStore()
        let manager = try manager(.memory, store: store)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        _ = try #require(try await manager.load(cookies: header(cookies)))
        var record = try #require(store.list(issuer: nil, idpSessionID: nil, subject: nil, limit: 10).first)
        let original = record.sealed
        record.sealed[record.sealed.count / 2] ^= 0x01
        #expect(store.replace(record, ifSealed: original))
        #expect(try await manager.load(cookies: header(cookies)) == nil)
        guard case .anonymous = manager.loadImmediately(cookies: header(cookies)) else {
            Issue.record("a tampered record was accepted")
            return
        }
    }

    @Test func anEndedSessionIsNotServedFromTheCache() async throws {
        let store = MemorySessionStore()
        let manager = try manager(.memory, store: store)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        for _ in 0..<3 { _ = try #require(try await manager.load(cookies: header(cookies))) }
        _ = try await manager.endSessions(issuer: "https://idp.test", idpSessionID: nil, subject: "alice")
        #expect(try await manager.load(cookies: header(cookies)) == nil)
        guard case .anonymous = manager.loadImmediately(cookies: header(cookies)) else {
            Issue.record("an ended session was served")
            return
        }
    }

    @Test(arguments: [SessionStoreKind.memory, .cookie])
    func aCachedSessionStillExpires(_ kind: SessionStoreKind) async throws {
        let manager = try manager(kind)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        #expect(try await manager.load(cookies: header(cookies)) != nil)
        time.advance(by: 3601)
        #expect(try await manager.load(cookies: header(cookies)) == nil)
    }

    @Test func cookieModeRevocationAppliesToCachedSessions() async throws {
        let manager = try manager(.cookie)
        let cookies = try await manager.create(session(), replacing: nil, cookies: CookieHeader(bytes: []))
        for _ in 0..<3 { _ = try #require(try await manager.load(cookies: header(cookies))) }
        _ = try await manager.endSessions(issuer: "https://idp.test", idpSessionID: "sid-1", subject: nil)
        #expect(try await manager.load(cookies: header(cookies)) == nil)
    }

    /// Sessions share their storage until one is written (copy on write): a write changes only
    /// the written copy — through every kind of accessor — and equality compares values.
    @Test func sessionCopiesAreIndependentValues() {
        let original = session()
        var changed = original
        #expect(changed == original)
        changed.tokens.accessToken = "AT-other"
        changed.tokens.store(ResourceToken(resource: "https://orders.example", accessToken: "AT-o", expiresAt: nil))
        changed.renewedAt += 5
        changed.authenticationContext = "mfa"
        #expect(original.tokens.accessToken == session().tokens.accessToken)
        #expect(original.tokens.resourceTokens.isEmpty)
        #expect(original.renewedAt == session().renewedAt)
        #expect(original.authenticationContext == nil)
        #expect(changed != original)
        #expect(changed.tokens.accessToken == "AT-other")
        var restored = changed
        restored.tokens = original.tokens
        restored.renewedAt = original.renewedAt
        restored.authenticationContext = nil
        #expect(restored == original, "equal values in separate storage are equal")
        #expect(changed.tokens.accessToken == "AT-other", "the copy written last did not change the first")
    }

    @Test func resourceTokensSurviveEncodingAndSessionsWithoutThemKeepVersionOne() {
        var withResources = session()
        withResources.tokens.store(
            ResourceToken(resource: "https://orders.example", accessToken: "AT-orders", expiresAt: time.now + 60))
        withResources.tokens.store(
            ResourceToken(resource: "https://billing.example", accessToken: "AT-billing", expiresAt: nil))
        withResources.tokens.store(
            ResourceToken(resource: "https://orders.example", accessToken: "AT-orders-2", expiresAt: time.now + 90))
        #expect(withResources.tokens.resourceTokens.count == 2)
        #expect(withResources.tokens.token(for: "https://orders.example")?.accessToken == "AT-orders-2")
        let encoded = withResources.encoded()
        #expect(encoded.first == 2)
        #expect(Session(encoded: encoded) == withResources)
        #expect(session().encoded().first == 1, "readable by releases without resource tokens")
        for length in 0..<encoded.count { #expect(Session(encoded: Array(encoded.prefix(length))) == nil) }
        #expect(Session(encoded: encoded + [0]) == nil)
    }

    @Test func sessionEncodingRejectsTruncation() {
        let encoded = session().encoded()
        for length in 0..<encoded.count { #expect(Session(encoded: Array(encoded.prefix(length))) == nil) }
        #expect(Session(encoded: encoded + [0]) == nil)
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        for start in 0...(count - subsequence.count)
        where self[start..<(start + subsequence.count)].elementsEqual(subsequence) {
            return true
        }
        return false
    }
}
