import Synchronization

/// Wall-clock time in whole seconds since 1970, the unit of JWT `exp`/`iat` and of session expiry.
public typealias UnixTime = Int64

/// A source of wall-clock time, injected so that expiry can be tested without sleeping.
public protocol TimeSource: Sendable {
    /// The current time, in seconds since 1970.
    var now: UnixTime { get }
}

/// The system clock.
public struct SystemTimeSource: TimeSource {
    /// Creates the system time source.
    public init() {}

    /// The current time from `clock_gettime(CLOCK_REALTIME)`.
    public var now: UnixTime {
        UnixTime(wallClockSeconds())
    }
}

/// A clock tests move by hand.
public final class ManualTimeSource: TimeSource {
    private let current: Mutex<UnixTime>

    /// Creates a clock standing at `now`.
    public init(now: UnixTime) { self.current = Mutex(now) }

    /// The current (manual) time.
    public var now: UnixTime { current.withLock { $0 } }

    /// Moves the clock forward by `seconds`.
    public func advance(by seconds: Int64) { current.withLock { $0 += seconds } }

    /// Moves the clock forward to `time` if it stands before it; never moves it back.
    public func advance(to time: UnixTime) { current.withLock { $0 = max($0, time) } }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@usableFromInline
func wallClockSeconds() -> Int {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int(spec.tv_sec)
}
