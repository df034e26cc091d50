import BFFCore

/// The checks every ``SessionStore`` must pass. Run each as its own test:
///
/// ```swift
/// @Test(arguments: SessionStoreConformance.Check.allCases)
/// func conformance(_ check: SessionStoreConformance.Check) async throws {
///     let store = try await makeStore()
///     try await SessionStoreConformance.run(check, store: store, rawDump: { try dumpFile() })
/// }
/// ```
public enum SessionStoreConformance {
    /// One behaviour of a store.
    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        case insertFindUpdateRemove
        case expiredRecordsAreNotFound
        case removeBySessionIDMatchesItsIssuerOnly
        case removeBySubject
        case removeNeedsACriterion
        case removeExpiredLeavesCurrentRecords
        case concurrentWrites
        case neverSeesPlaintext
        case updateOfARemovedRecordDoesNotResurrectIt
        case listFilters
        case replaceOnlyIfUnchanged
        case exclusiveWritesTheReturnedRecord

        /// The check's name.
        public var description: String { rawValue }
    }

    /// A failed expectation.
    public struct Failure: Error, CustomStringConvertible {
        /// What was expected.
        public let description: String
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw Failure(description: message()) }
    }

    static func record(
        _ tag: UInt8, issuer: String = "https://idp.test", sid: String? = "sid-1", subject: String = "alice",
        expires: UnixTime = 2_000
    ) -> SessionRecord {
        SessionRecord(
            key: Array(repeating: tag, count: 32), sealed: Array(repeating: tag &+ 1, count: 40), subject: subject,
            idpSessionID: sid, issuer: issuer, createdAt: 1_000, renewedAt: 1_000, expiresAt: expires)
    }

    /// Runs `check` against an empty `store`. `rawDump` returns everything the store persisted
    /// (file bytes, table contents), for the plaintext check.
    public static func run(_ check: Check, store: any SessionStore, rawDump: @Sendable () async throws -> [UInt8])
        async throws
    {
        switch check {
        case .insertFindUpdateRemove:
            let original = record(1)
            try await store.insert(original)
            try expect(try await store.find(key: original.key, now: 1_500) == original, "inserted record is found")
            var changed = original
            changed.sealed = [9, 9, 9]
            changed.renewedAt = 1_400
            changed.expiresAt = 3_000
            try await store.update(changed)
            try expect(try await store.find(key: original.key, now: 2_500) == changed, "update replaces the record")
            try expect(try await store.remove(key: original.key) == changed, "remove returns the record")
            try expect(try await store.find(key: original.key, now: 1_500) == nil, "removed record is gone")
            try expect(try await store.remove(key: original.key) == nil, "second remove finds nothing")
        case .expiredRecordsAreNotFound:
            try await store.insert(record(2, expires: 2_000))
            try expect(try await store.find(key: record(2).key, now: 1_999) != nil, "found before expiry")
            try expect(try await store.find(key: record(2).key, now: 2_000) == nil, "not found at expiry")
        case .removeBySessionIDMatchesItsIssuerOnly:
            try await store.insert(record(3, sid: "shared"))
            try await store.insert(record(4, issuer: "https://other.test", sid: "shared"))
            try await store.insert(record(5, sid: "other"))
            let removed = try await store.removeAll(issuer: "https://idp.test", idpSessionID: "shared", subject: nil)
            try expect(removed.map(\.key) == [record(3).key], "only the matching issuer's session is removed")
            try expect(try await store.find(key: record(4).key, now: 1_500) != nil, "other issuer kept")
            try expect(try await store.find(key: record(5).key, now: 1_500) != nil, "other sid kept")
        case .removeBySubject:
            try await store.insert(record(6, sid: "a", subject: "bob"))
            try await store.insert(record(7, sid: "b", subject: "bob"))
            try await store.insert(record(8, sid: "c", subject: "carol"))
            let removed = try await store.removeAll(issuer: "https://idp.test", idpSessionID: nil, subject: "bob")
            try expect(Set(removed.map(\.key)) == [record(6).key, record(7).key], "both of bob's sessions removed")
            try expect(try await store.find(key: record(8).key, now: 1_500) != nil, "carol's kept")
        case .removeNeedsACriterion:
            try await store.insert(record(9))
            try expect(
                try await store.removeAll(issuer: "https://idp.test", idpSessionID: nil, subject: nil).isEmpty,
                "no criterion, nothing removed")
            try expect(try await store.find(key: record(9).key, now: 1_500) != nil, "record kept")
        case .removeExpiredLeavesCurrentRecords:
            try await store.insert(record(10, expires: 1_200))
            try await store.insert(record(11, expires: 5_000))
            let removed = try await store.removeExpired(now: 1_300)
            try expect(removed.map(\.key) == [record(10).key], "only the expired record removed")
            try expect(try await store.find(key: record(11).key, now: 1_300) != nil, "current record kept")
        case .concurrentWrites:
            try await withThrowingTaskGroup(of: Void.self) { group in
                for tag in UInt8(20)..<UInt8(70) {
                    group.addTask {  // justified: structured child task of the group
                        try await store.insert(record(tag, sid: "s\(tag)"))
                    }
                }
                try await group.waitForAll()
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 0..<50 {
                    group.addTask {  // justified: structured child task of the group
                        var changed = record(20, sid: "s20")
                        changed.renewedAt = 1_000 + UnixTime(round)
                        try await store.update(changed)
                    }
                }
                try await group.waitForAll()
            }
            for tag in UInt8(20)..<UInt8(70) {
                try expect(try await store.find(key: record(tag).key, now: 1_500) != nil, "record \(tag) present")
            }
            let final = try await store.find(key: record(20).key, now: 1_500)
            try expect(
                final.map { $0.renewedAt >= 1_000 && $0.renewedAt < 1_050 } ?? false,
                "one of the concurrent updates won")
        case .neverSeesPlaintext:
            let keyRing = try KeyRing(keys: [KeyRing.Key(id: "k", secret: Array(repeating: 7, count: 32))])
            let manager = SessionManager(
                configuration: SessionConfiguration(store: .memory), sealer: Sealer(keyRing: keyRing), store: store,
                revocations: RevocationList(retention: 60))
            let secrets = ["ACCESS-TOKEN-SECRET-1", "REFRESH-TOKEN-SECRET-2", "ID-TOKEN-SECRET-3", "CLAIM-SECRET-4"]
            let now = SystemTimeSource().now
            let session = Session(
                issuer: "https://idp.test", subject: "alice", idpSessionID: "sid", logoutID: "sid",
                claimsJSON: Array("{\"secret\":\"\(secrets[3])\"}".utf8),
                tokens: TokenSet(
                    accessToken: secrets[0], accessTokenExpiresAt: now + 60, refreshToken: secrets[1],
                    idToken: secrets[2]),
                createdAt: now, renewedAt: now)
            _ = try await manager.create(session, replacing: nil, cookies: CookieHeader(bytes: []))
            let dump = try await rawDump()
            try expect(!dump.isEmpty, "the raw dump holds the session")
            for secret in secrets {
                try expect(!contains(dump, Array(secret.utf8)), "\(secret) must not appear in the store")
            }
        case .listFilters:
            try await store.insert(record(90, sid: "x", subject: "dana"))
            try await store.insert(record(91, sid: "y", subject: "dana"))
            try await store.insert(record(92, issuer: "https://other.test", sid: "x", subject: "erin"))
            try expect(
                try await store.list(issuer: nil, idpSessionID: nil, subject: nil, limit: 10).count == 3, "all listed")
            try expect(
                try await store.list(issuer: nil, idpSessionID: nil, subject: "dana", limit: 10).count == 2,
                "by subject")
            try expect(
                try await store.list(issuer: "https://idp.test", idpSessionID: "x", subject: nil, limit: 10).map(\.key)
                    == [record(90).key], "by issuer and sid")
            try expect(
                try await store.list(issuer: nil, idpSessionID: nil, subject: nil, limit: 1).count == 1,
                "limit honoured")
        case .replaceOnlyIfUnchanged:
            let original = record(100)
            try await store.insert(original)
            var changed = original
            changed.sealed = [1, 2, 3]
            changed.renewedAt = 1_100
            try expect(
                try await store.replace(changed, ifSealed: [9, 9]) == false, "a stale copy does not replace the record")
            try expect(try await store.find(key: original.key, now: 1_500) == original, "record unchanged")
            try expect(
                try await store.replace(changed, ifSealed: original.sealed), "the current copy replaces the record")
            try expect(try await store.find(key: original.key, now: 1_500) == changed, "record replaced")
            _ = try await store.remove(key: original.key)
            try expect(
                try await store.replace(changed, ifSealed: changed.sealed) == false, "a removed record is not revived")
            try expect(try await store.find(key: original.key, now: 1_500) == nil, "still removed")
        case .exclusiveWritesTheReturnedRecord:
            let original = record(101)
            try await store.insert(original)
            let seen = try await store.exclusively(key: original.key, now: 1_500) { current in
                var changed = original
                changed.sealed = [4, 5, 6]
                return (changed, current)
            }
            try expect(seen == original, "the body sees the stored record")
            try expect(
                try await store.find(key: original.key, now: 1_500)?.sealed == [4, 5, 6], "its result is stored")
            let untouched = try await store.exclusively(key: original.key, now: 1_500) { current in
                (nil, current?.sealed)
            }
            try expect(untouched == [4, 5, 6], "nil writes nothing")
            let absent = try await store.exclusively(key: record(102).key, now: 1_500) { current in
                (record(102), current == nil)
            }
            try expect(absent, "an absent record is passed as nil")
            try expect(try await store.find(key: record(102).key, now: 1_500) == nil, "and is not created")
        case .updateOfARemovedRecordDoesNotResurrectIt:
            try await store.insert(record(80))
            _ = try await store.remove(key: record(80).key)
            try await store.update(record(80))
            try expect(
                try await store.find(key: record(80).key, now: 1_500) == nil, "update after remove does not insert")
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
