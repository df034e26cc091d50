import BFFCore

/// The records ``SQLiteSessionStore`` vouches for without reading the file. Every write first
/// forgets what it touches and bumps `sequence`; a read only records its result if no write began
/// while it ran, so a read racing a logout can never bring the deleted row back.
struct ConfirmedRecords {
    var records: [[UInt8]: (SessionRecord, ContinuousClock.Instant)] = [:]
    var sequence: UInt64 = 0
}

extension SQLiteSessionStore {
    /// A record read or written within ``confirmationWindow`` (and not written or deleted since);
    /// `.unknown` otherwise — never a guess about the file.
    public func findImmediately(key: [UInt8], now: UnixTime) -> ImmediateLookup {
        confirmed.withLock { confirmed in
            guard let (record, at) = confirmed.records[key], ContinuousClock.now - at < Self.confirmationWindow,
                record.expiresAt > now
            else { return .unknown }
            return .found(record)
        }
    }

    /// The current write sequence number (tests).
    var writeSequence: UInt64 { confirmed.withLock { $0.sequence } }

    /// Forgets `keys` (all records when nil) before and after a write.
    func forget(_ keys: [[UInt8]]?) {
        confirmed.withLock { confirmed in
            confirmed.sequence &+= 1
            if let keys {
                for key in keys { confirmed.records[key] = nil }
            } else {
                confirmed.records.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Records `record` as just read or written; with `ifUnchangedSince`, only if no write began
    /// since that sequence number.
    func remember(_ record: SessionRecord, ifUnchangedSince sequence: UInt64? = nil) {
        confirmed.withLock { confirmed in
            if let sequence, sequence != confirmed.sequence { return }
            if confirmed.records.count >= Self.confirmedCapacity { confirmed.records.removeAll(keepingCapacity: true) }
            confirmed.records[record.key] = (record, ContinuousClock.now)
        }
    }
}
