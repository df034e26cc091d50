import BFFCore
import Testing

/// The token coordination state machine alone: no sockets, no tasks, time passed in.
@Suite struct TokenCoordinatorTests {
    struct Boom: Error {}

    /// Refresh results (keyed by the spent refresh token) are reused for 120 s.
    func refreshMachine() -> TokenCoordinator<String, String, Int> {
        TokenCoordinator(retention: 120) { _, settledAt, now in now - settledAt < 120 }
    }

    @Test func theFirstCallerFetchesAndLaterOnesWait() {
        var machine = refreshMachine()
        #expect(machine.request("rt1", now: 0, waiter: 1) == .fetch)
        #expect(machine.request("rt1", now: 0, waiter: 2) == .wait)
        #expect(machine.request("rt1", now: 1, waiter: 3) == .wait)
        #expect(machine.request("rt2", now: 1, waiter: 4) == .fetch, "another key is independent")
        #expect(machine.fetching == 2)
        #expect(machine.finish("rt1", with: .success("at-new"), now: 2) == [2, 3])
        #expect(machine.fetching == 1)
    }

    @Test func aSettledRefreshIsHandedToLateCallersInsteadOfReplayingTheToken() {
        var machine = refreshMachine()
        _ = machine.request("rt1", now: 0, waiter: 1)
        _ = machine.finish("rt1", with: .success("at-new"), now: 5)
        // A caller that loaded the session before the refresh finished still holds rt1.
        #expect(machine.request("rt1", now: 100, waiter: 2) == .use("at-new"))
        #expect(machine.usableValue("rt1", now: 124) == "at-new")
        // Past the retention the result is no longer used: a new request is allowed.
        #expect(machine.usableValue("rt1", now: 125) == nil)
        #expect(machine.request("rt1", now: 125, waiter: 3) == .fetch)
    }

    @Test func aFailureWakesTheWaitersAndLeavesNothingBehind() {
        var machine = refreshMachine()
        _ = machine.request("rt1", now: 0, waiter: 1)
        _ = machine.request("rt1", now: 0, waiter: 2)
        #expect(machine.finish("rt1", with: .failure(Boom()), now: 1) == [2])
        #expect(machine.fetching == 0)
        #expect(machine.request("rt1", now: 1, waiter: 3) == .fetch, "the next caller tries again")
    }

    @Test func finishingAKeyThatIsNotFetchingChangesNothing() {
        var machine = refreshMachine()
        #expect(machine.finish("rt1", with: .success("x"), now: 0).isEmpty)
        #expect(machine.usableValue("rt1", now: 0) == nil, "a stray completion settles nothing")
    }

    @Test func clientTokensAreUsedUntilSixtySecondsBeforeExpiry() {
        // Values carry their expiry; settled time does not matter.
        var machine = TokenCoordinator<String, Int64, Int>(retention: 86_400) { expiresAt, _, now in
            expiresAt - 60 > now
        }
        #expect(machine.request("scope", now: 0, waiter: 1) == .fetch)
        _ = machine.finish("scope", with: .success(300), now: 0)
        #expect(machine.request("scope", now: 239, waiter: 2) == .use(300))
        #expect(machine.request("scope", now: 240, waiter: 3) == .fetch, "inside the last minute: fetched anew")
    }

    @Test func pruningDropsOnlyOldSettledValues() {
        var machine = refreshMachine()
        _ = machine.request("old", now: 0, waiter: 1)
        _ = machine.finish("old", with: .success("a"), now: 0)
        _ = machine.request("busy", now: 0, waiter: 2)
        machine.prune(now: 500)
        #expect(machine.usableValue("old", now: 500) == nil)
        #expect(machine.fetching == 1, "a fetch in flight survives pruning")
    }

    @Test func flightsRunOneFetchForConcurrentCallers() async throws {
        let time = ManualTimeSource(now: 1000)
        let flights = TokenFlights<String, Int>(retention: 120, time: time) { _, at, now in now - at < 120 }
        let counter = Counter()
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await flights.value("key") {
                        await counter.increment()
                        try await Task.sleep(for: .milliseconds(100))
                        return 42
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(results.count == 50 && results.allSatisfy { $0 == 42 })
        #expect(await counter.value == 1)
        #expect(flights.fetching == 0)
        #expect(flights.usableValue("key") == 42)
        time.advance(by: 120)
        #expect(flights.usableValue("key") == nil)
    }

    @Test func flightsShareFailuresWithoutKeepingThem() async throws {
        let flights = TokenFlights<String, Int>(retention: 120, time: ManualTimeSource(now: 0)) { _, _, _ in true }
        await #expect(throws: Boom.self) { try await flights.value("k") { throw Boom() } }
        #expect(try await flights.value("k") { 7 } == 7, "a failure does not stick")
    }
}

extension TokenCoordinator.RequestAction: Equatable where Value: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.use(let a), .use(let b)): a == b
        case (.fetch, .fetch), (.wait, .wait): true
        default: false
        }
    }
}

/// The refresh decision inside the session's exclusive (cross-instance) section, alone.
@Suite("Exclusive refresh decision")
struct ExclusiveRefreshTests {
    func tokens(access: String?, expiresAt: UnixTime?, refresh: String?) -> TokenSet {
        TokenSet(accessToken: access, accessTokenExpiresAt: expiresAt, tokenType: "Bearer", refreshToken: refresh)
    }

    @Test func unchangedSinceLoadedRefreshesWithTheStoredToken() {
        let stored = tokens(access: "a1", expiresAt: 1_000, refresh: "r1")
        #expect(
            ExclusiveRefresh.decide(stored: stored, planned: "r1", loadedAccessToken: "a1", now: 990)
                == .refresh(with: "r1"))
    }

    @Test func rotatedByAnotherInstanceUsesTheStoredResult() {
        let stored = tokens(access: "a2", expiresAt: 1_300, refresh: "r2")
        #expect(
            ExclusiveRefresh.decide(stored: stored, planned: "r1", loadedAccessToken: "a1", now: 1_000) == .useStored)
        // A new access token without rotation (IdPs that keep the refresh token) counts too.
        let unrotated = tokens(access: "a2", expiresAt: 1_300, refresh: "r1")
        #expect(
            ExclusiveRefresh.decide(stored: unrotated, planned: "r1", loadedAccessToken: "a1", now: 1_000) == .useStored
        )
        // No known expiry: trusted while present.
        let noExpiry = tokens(access: "a2", expiresAt: nil, refresh: "r2")
        #expect(
            ExclusiveRefresh.decide(stored: noExpiry, planned: "r1", loadedAccessToken: "a1", now: 1_000) == .useStored)
    }

    @Test func rotatedButExpiredRefreshesWithTheStoredTokenNeverThePlannedOne() {
        let stored = tokens(access: "a2", expiresAt: 1_000, refresh: "r2")
        #expect(
            ExclusiveRefresh.decide(stored: stored, planned: "r1", loadedAccessToken: "a1", now: 1_000)
                == .refresh(with: "r2"))
    }

    @Test func noStoredRefreshTokenIsASessionGone() {
        let stored = tokens(access: nil, expiresAt: nil, refresh: nil)
        #expect(
            ExclusiveRefresh.decide(stored: stored, planned: "r1", loadedAccessToken: "a1", now: 1_000) == .sessionGone)
        let expired = tokens(access: "a1", expiresAt: 900, refresh: nil)
        #expect(
            ExclusiveRefresh.decide(stored: expired, planned: "r1", loadedAccessToken: "a1", now: 1_000) == .sessionGone
        )
    }
}
