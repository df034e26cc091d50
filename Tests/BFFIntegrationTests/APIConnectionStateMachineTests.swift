import NIOCore
import NIOHTTP1
import Testing

@testable import BFFHummingbird

/// The API handler's connection state machine alone: one event order per test, no channel.
@Suite("API connection state machine, event by event")
struct APIConnectionStateMachineTests {
    typealias Machine = APIConnectionStateMachine
    let get = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api/a")
    let post = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/api/b")
    let chunk = ByteBuffer(string: "abc")

    @Test func aBodylessCallForwardedAtOnce() {
        var machine = Machine()
        #expect(machine.received(.head(get)) == .decide(get))
        #expect(machine.forward().isEmpty)
        #expect(machine.state == .forwarding(requestOpen: true))
        #expect(machine.received(.end(nil)) == .uploadEnd)
        #expect(machine.responseEnded() == true)
        #expect(machine.state == .idle)
        #expect(machine.next() == .none)
    }

    @Test func bodyPartsArrivingWhileTheCallWaitsAreBufferedThenSentInOrder() {
        var machine = Machine()
        _ = machine.received(.head(post))
        machine.suspend()
        #expect(machine.read() == false, "no reading while the planner works")
        #expect(machine.readHeld)
        #expect(machine.received(.body(chunk)) == .none)
        #expect(machine.received(.end(nil)) == .none)
        #expect(machine.state == .waiting(requestOpen: false))
        #expect(machine.forward() == [.upload(chunk), .uploadEnd])
        #expect(machine.state == .forwarding(requestOpen: false))
        #expect(machine.releaseRead() == true, "the held read goes out once forwarding")
    }

    /// The review's wedge: a request that waits (a refresh, a new upstream connection) with a
    /// pipelined one behind it; its own end must not be queued behind the next request's head.
    @Test func theWaitingRequestsOwnPartsGoBeforeAPipelinedRequest() {
        var machine = Machine()
        _ = machine.received(.head(post))
        machine.suspend()
        _ = machine.received(.body(chunk))
        _ = machine.received(.end(nil))
        #expect(machine.received(.head(get)) == .none)
        #expect(machine.received(.end(nil)) == .none)
        #expect(machine.forward() == [.upload(chunk), .uploadEnd], "the first request's body and end go up")
        #expect(machine.responseEnded() == true)
        #expect(machine.next() == .replay([.head(get), .end(nil)]), "then the pipelined one")
    }

    @Test func aPipelinedRequestWaitsForTheCurrentResponseAndHoldsReading() {
        var machine = Machine()
        _ = machine.received(.head(get))
        _ = machine.forward()
        _ = machine.received(.end(nil))
        #expect(machine.received(.head(post)) == .none)
        #expect(machine.received(.body(chunk)) == .none)
        #expect(machine.read() == false, "reading is held while a request is queued")
        #expect(machine.responseEnded() == true)
        #expect(machine.next() == .replay([.head(post), .body(chunk)]))
        #expect(machine.received(.head(post)) == .decide(post), "the replayed head is decided")
    }

    @Test func anEarlyResponseBeforeTheWholeBodyClosesTheConnection() {
        var machine = Machine()
        _ = machine.received(.head(post))
        _ = machine.forward()
        #expect(machine.received(.body(chunk)) == .upload(chunk))
        #expect(machine.responseEnded() == false)
        #expect(machine.state == .closed)
        #expect(machine.received(.body(chunk)) == .none, "nothing more goes up")
    }

    @Test func aRefusalDropsTheRestOfTheBodyThenFreesTheConnection() {
        var machine = Machine()
        _ = machine.received(.head(post))
        #expect(machine.answer() == false, "the body is still coming")
        #expect(machine.received(.body(chunk)) == .none)
        #expect(machine.received(.end(nil)) == .requestDone)
        #expect(machine.state == .idle)
    }

    @Test func aRefusalAfterTheWholeRequestFreesTheConnectionAtOnce() {
        var machine = Machine()
        _ = machine.received(.head(post))
        machine.suspend()
        _ = machine.received(.body(chunk))
        _ = machine.received(.end(nil))
        #expect(machine.answer() == true)
        #expect(machine.state == .idle)
    }

    @Test func aRouterRequestPassesItsBodyOnAndEndsWithItsResponse() {
        var machine = Machine()
        _ = machine.received(.head(post))
        machine.pass()
        #expect(machine.received(.body(chunk)) == .passOn(.body(chunk)))
        #expect(machine.received(.end(nil)) == .passOn(.end(nil)))
        #expect(machine.received(.head(get)) == .none, "the next request waits for the router's response")
        machine.routerResponseEnded()
        #expect(machine.next() == .replay([.head(get)]))
    }

    @Test func aRouterResponseEndingBeforeItsRequestKeepsPassingTheBody() {
        var machine = Machine()
        _ = machine.received(.head(post))
        machine.pass()
        machine.routerResponseEnded()
        #expect(machine.state == .routed(requestOpen: true, responseOpen: false))
        #expect(machine.received(.end(nil)) == .passOn(.end(nil)))
        #expect(machine.state == .idle)
    }

    @Test func theClientLeavingWhileTheCallWaitsDropsItsResult() {
        var machine = Machine()
        _ = machine.received(.head(get))
        machine.suspend()
        #expect(machine.clientGone() == .waiting)
        #expect(machine.forward().isEmpty, "a late decision finds the connection closed")
        #expect(machine.state == .closed)
    }

    @Test func theClientLeavingMidExchangeAbandonsIt() {
        var machine = Machine()
        _ = machine.received(.head(get))
        _ = machine.forward()
        #expect(machine.clientGone() == .exchange)
        #expect(machine.received(.head(get)) == .none)
    }

    @Test func quiescingClosesOnlyOnceTheCallInProgressEnded() {
        var machine = Machine()
        _ = machine.received(.head(get))
        _ = machine.forward()
        _ = machine.received(.end(nil))
        #expect(machine.quiesce() == false)
        #expect(machine.received(.head(get)) == .none, "a pipelined request after quiescing waits")
        #expect(machine.responseEnded() == true)
        #expect(machine.next() == .replay([.head(get)]))
        #expect(machine.received(.head(get)) == .none, "…and is not started while quiescing")
        #expect(machine.next() == .close)
    }

    @Test func quiescingAnIdleConnectionClosesAtOnce() {
        var machine = Machine()
        #expect(machine.quiesce() == true)
        #expect(machine.state == .closed)
    }

    @Test func uploadBackPressureHoldsReadingUntilTheUpstreamDrains() {
        var machine = Machine()
        _ = machine.received(.head(post))
        _ = machine.forward()
        machine.pauseUpload()
        #expect(machine.read() == false)
        #expect(machine.resumeUpload() == true, "the held read goes out")
        #expect(machine.read() == true)
    }
}
