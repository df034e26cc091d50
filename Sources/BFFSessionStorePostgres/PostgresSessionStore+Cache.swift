import BFFCore
import Logging
import PostgresNIO
import Synchronization

/// Sessions this instance read, vouched for while a `LISTEN` subscription tells it about every
/// change. A trigger on the sessions table notifies the key of every updated or deleted row (any
/// instance, `bff sessions revoke`, cleanup); the notification evicts the record here. While the
/// subscription is down nothing is vouched for: lookups read through until it is back.
///
/// Races: every eviction and every change of the subscription bumps `sequence`; a read only
/// records its result if the sequence did not move while it ran, so a row read just before a
/// logout committed can never be cached after the logout's notification.
struct SessionCache {
    var records: [ByteKey: SessionRecord] = [:]
    var sequence: UInt64 = 0
    var subscribed = false
    /// When the subscription's connection last answered a heartbeat: a connection lost without a
    /// close (a silent network partition) stops vouching after ``heartbeatWindow``.
    var heartbeat = ContinuousClock.now
    static let capacity = 100_000
    static let heartbeatInterval = Duration.milliseconds(500)
    static let heartbeatWindow = Duration.milliseconds(1500)

    func lookup(_ key: [UInt8], now: UnixTime) -> ImmediateLookup {
        guard subscribed, let record = records[ByteKey(key)], record.expiresAt > now,
            ContinuousClock.now - heartbeat < Self.heartbeatWindow
        else { return .unknown }
        return .found(record)
    }

    /// Before a read: the sequence to pass to ``remember(_:ifUnchangedSince:)``; nil when not subscribed.
    func readStarted() -> UInt64? { subscribed ? sequence : nil }

    mutating func remember(_ record: SessionRecord, ifUnchangedSince start: UInt64) {
        guard subscribed, start == sequence else { return }
        if records.count >= Self.capacity { records.removeAll(keepingCapacity: true) }
        records[ByteKey(record.key)] = record
    }

    mutating func evict(_ key: [UInt8]) {
        sequence &+= 1
        records[ByteKey(key)] = nil
    }

    mutating func evictAll() {
        sequence &+= 1
        records.removeAll(keepingCapacity: true)
    }

    mutating func setSubscribed(_ value: Bool) {
        evictAll()
        subscribed = value
        heartbeat = .now
    }
}

extension PostgresSessionStore: ImmediateSessionLookup {
    /// A record this instance read while subscribed and no change was notified since; `.unknown`
    /// otherwise (never a guess).
    public func findImmediately(key: [UInt8], now: UnixTime) -> ImmediateLookup {
        cache.withLock { $0.lookup(key, now: now) }
    }

    /// Whether the change subscription is up (the cache is in use).
    public var isSubscribedToChanges: Bool { cache.withLock { $0.subscribed } }

    /// The notification channel (lower case: an unquoted `LISTEN` name folds to it).
    var changeChannel: String { "bff_sessions_" + schema.lowercased() }

    /// Keeps a `LISTEN` connection open while the store runs, reconnecting after a drop (1 s apart),
    /// and evicts each notified key. A heartbeat query every 500 ms proves the connection alive;
    /// one that does not answer within the window ends the subscription.
    func listenForChanges() async {
        let logger = self.logger
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try Self.connectionConfiguration(configuration), id: 1, logger: logger)
                do {
                    try await connection.listen(on: changeChannel) { notifications in
                        self.cache.withLock { $0.setSubscribed(true) }
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {  // justified: structured child task of the group
                                for try await notification in notifications {
                                    guard let key = Self.bytes(hex: notification.payload) else {
                                        self.cache.withLock { $0.evictAll() }
                                        continue
                                    }
                                    self.cache.withLock { $0.evict(key) }
                                }
                            }
                            group.addTask {  // justified: structured child task of the group
                                while true {
                                    try await Task.sleep(for: SessionCache.heartbeatInterval)
                                    // Named after the channel, so an operator (or a test) can
                                    // tell the subscription's backend in pg_stat_activity.
                                    let heartbeat: PostgresQuery = "SELECT 1 AS \(unescaped: self.changeChannel)"
                                    try await withStoreDeadline(SessionCache.heartbeatWindow) {
                                        try await connection.query(heartbeat, logger: logger)
                                    }
                                    self.cache.withLock { $0.heartbeat = .now }
                                }
                            }
                            // Whichever ends first (a dropped connection, a missed heartbeat) ends both.
                            _ = try await group.next()
                            group.cancelAll()
                        }
                    }
                } catch {
                    logger.debug("session change subscription ended", metadata: ["bff.error": "\(error)"])
                }
                cache.withLock { $0.setSubscribed(false) }
                try? await connection.close()
            } catch {
                cache.withLock { $0.setSubscribed(false) }
            }
            try? await Task.sleep(for: .seconds(1))
        }
        cache.withLock { $0.setSubscribed(false) }
    }

    /// The trigger that notifies every change (schema version 2).
    func changeNotificationStatements() -> [PostgresQuery] {
        [
            """
            CREATE OR REPLACE FUNCTION \(unescaped: schema).bff_sessions_notify() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('\(unescaped: changeChannel)', encode(OLD.key, 'hex'));
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER bff_sessions_changed AFTER UPDATE OR DELETE ON \(unescaped: sessions)
            FOR EACH ROW EXECUTE FUNCTION \(unescaped: schema).bff_sessions_notify()
            """,
        ]
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
