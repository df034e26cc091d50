import BFFCore

/// The records ``SQLiteSessionStore`` vouches for without reading the file. Every write first
/// forgets what it touches and bumps `sequence`; a read only records its result if no write began
/// while it ran, so a read racing a logout can never bring the deleted row back.
struct ConfirmedRecords {
    var records: [ByteKey: (SessionRecord, ContinuousClock.Instant)] = [:]
    var sequence: UInt64 = 0
}

extension SQLiteSessionStore {
    /// A record read or written within ``confirmationWindow`` (and not written or deleted since);
    /// `.unknown` otherwise — never a guess about the file.
    public func findImmediately(key: [UInt8], now: UnixTime) -> ImmediateLookup {
        confirmed.withLock { confirmed in
            guard let (record, at) = confirmed.records[ByteKey(key)],
                ContinuousClock.now - at < Self.confirmationWindow,
                record.expiresAt > now
            else { return .unknown }
            return .found(record)
        }
    }

    /// The current write sequence number (tests).
    var writeSequence: UInt64 { confirmed.withLock { $0.sequence } }

    /// Forgets `keys` (all records when nil) before and after a write; returns the new sequence
    /// number, for ``remember(_:ifUnchangedSince:)`` after the write.
    @discardableResult
    func forget(_ keys: [[UInt8]]?) -> UInt64 {
        confirmed.withLock { confirmed in
            confirmed.sequence &+= 1
            if let keys {
                for key in keys { confirmed.records[ByteKey(key)] = nil }
            } else {
                confirmed.records.removeAll(keepingCapacity: true)
            }
            return confirmed.sequence
        }
    }

    /// Records what a write just stored, unless another write began since this one's
    /// ``forget(_:)`` returned `sequence` (a logout deleting the row right after this write must
    /// win: the record is then read from the file again).
    func confirmWrite(_ record: SessionRecord, sequence: UInt64) async {
        if let hook = beforeConfirmingWrite.withLock({ $0 }) { await hook() }
        remember(record, ifUnchangedSince: sequence)
    }

    /// Records `record` as just read or written; with `ifUnchangedSince`, only if no write began
    /// since that sequence number.
    func remember(_ record: SessionRecord, ifUnchangedSince sequence: UInt64? = nil) {
        confirmed.withLock { confirmed in
            if let sequence, sequence != confirmed.sequence { return }
            if confirmed.records.count >= Self.confirmedCapacity { confirmed.records.removeAll(keepingCapacity: true) }
            confirmed.records[ByteKey(record.key)] = (record, ContinuousClock.now)
        }
    }
}
