import BFFCore
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import BFFForwarder
@testable import BFFGateway
@testable import BFFHummingbird
@testable import BFFOIDC

/// The gateway's API handler on `EmbeddedChannel`s — the client connection and a pooled upstream
/// connection on one embedded loop — one event order per test: what goes up, what comes back,
/// and that the upstream connection ends idle in its pool or closed, never leased.
@Suite("API call handler, event by event")
struct APICallHandlerTests {
    struct NoIdP: OIDCHTTPClient {
        func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse {
            throw CancellationError()
        }
    }

    /// Records what the handler passes on to the router.
    final class RouterStub: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var parts: [HTTPServerRequestPart] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { parts.append(unwrapInboundIn(data)) }
    }

    final class Rig {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let router = RouterStub()
        let forwarder: NIOUpstream
        let pool: UpstreamConnectionPool
        var upstreams: [EmbeddedChannel] = []
        let calls = APICallLog()
        let bff: BFF

        init(connections: Int = 1, retrievers: [String: any TokenRetriever] = [:]) throws {
            var configuration = try DemoSetup.make(
                port: 8080, idpPort: 9, apiPort: 9, adminPort: nil, accessTokenLifetime: 300)
            configuration.gateway.bff.apis = [
                APIRouteConfiguration(
                    path: "/api", upstream: "http://127.0.0.1:9/up", token: .none, timeout: .seconds(5)),
                APIRouteConfiguration(
                    path: "/user-api", upstream: "http://127.0.0.1:9/up", token: .user, timeout: .seconds(5)),
            ]
            var bff = try BFF(
                configuration: configuration.gateway.bff, keyRing: configuration.keyRing, http: NoIdP(),
                store: MemorySessionStore(), tokenRetrievers: retrievers)
            bff.apiCallObserver = calls.observer
            self.bff = bff
            forwarder = NIOUpstream(group: loop)
            pool = forwarder.pool(host: "127.0.0.1", port: 9, eventLoop: loop)
            client = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addHandler(
                APICallHandler(frontends: APICallFrontends(bff: bff, forwarder: forwarder, idleTimeout: nil)))
            try client.pipeline.syncOperations.addHandler(router)
            try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
            for _ in 0..<connections { try addUpstream() }
        }

        func addUpstream() throws {
            let channel = EmbeddedChannel(loop: loop)
            let handler = UpstreamConnectionHandler()
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
            pool.adoptIdle(UpstreamConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: loop)))
            upstreams.append(channel)
        }

        func send(_ parts: HTTPServerRequestPart...) throws {
            for part in parts { try client.writeInbound(part) }
        }

        /// What the upstream received by the end of the loop's round (when flushes are made:
        /// ``LoopFlushes``).
        func upstreamParts(_ index: Int = 0) throws -> [HTTPClientRequestPart] {
            loop.run()
            var parts: [HTTPClientRequestPart] = []
            while let part = try upstreams[index].readOutbound(as: HTTPClientRequestPart.self) { parts.append(part) }
            return parts
        }

        func respond(_ index: Int = 0, _ parts: HTTPClientResponsePart...) throws {
            for part in parts { try upstreams[index].writeInbound(part) }
        }

        /// What the client received by the end of the loop's round, or so far (`roundEnded: false`).
        func clientParts(roundEnded: Bool = true) throws -> [HTTPServerResponsePart] {
            if roundEnded { loop.run() }
            var parts: [HTTPServerResponsePart] = []
            while let part = try client.readOutbound(as: HTTPServerResponsePart.self) { parts.append(part) }
            return parts
        }

        var idle: Int { pool.idleCount }
        var leased: Int { pool.leasedCount }
    }

    static func head(_ uri: String, _ headers: [(String, String)] = [("X-CSRF", "1")]) -> HTTPServerRequestPart {
        head(.GET, uri, headers)
    }

    static func head(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)] = [("X-CSRF", "1")])
        -> HTTPServerRequestPart
    {
        .head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers)))
    }

    static let okHead = HTTPClientResponsePart.head(
        HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "2"]))

    func status(_ parts: [HTTPServerResponsePart]) -> [Int] {
        parts.compactMap { part in
            if case .head(let head) = part { return Int(head.status.code) }
            return nil
        }
    }

    @Test func aCallGoesUpWithTheGatewaysHeadersAndTheConnectionReturnsIdle() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/a?x=1", [("X-CSRF", "1"), ("X-Forwarded-Prefix", "/admin")]), .end(nil))
        let up = try rig.upstreamParts()
        guard case .head(let head) = up.first else { throw Failure("no head upstream: \(up)") }
        #expect(head.uri == "/up/a?x=1")
        #expect(head.headers["Host"] == ["127.0.0.1:9"])
        #expect(head.headers["X-Forwarded-Proto"] == ["http"])
        #expect(head.headers["X-CSRF"].isEmpty && head.headers["X-Forwarded-Prefix"].isEmpty)
        #expect(rig.leased == 1)
        try rig.respond(0, Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil))
        let back = try rig.clientParts()
        #expect(status(back) == [200])
        #expect(back.count == 3)
        #expect(rig.leased == 0 && rig.idle == 1, "returned to the pool")
        #expect(rig.calls.pipeline(for: "x=1") == .eventLoop)
    }

    @Test func anUploadStreamsUpWithBackPressure() throws {
        let rig = try Rig()
        try rig.send(Self.head(.POST, "/api/u", [("X-CSRF", "1"), ("Content-Length", "6")]))
        _ = try rig.upstreamParts()
        rig.upstreams[0].isWritable = false
        try rig.send(.body(ByteBuffer(string: "abc")))
        #expect(try rig.upstreamParts() == [.body(.byteBuffer(ByteBuffer(string: "abc")))])
        // The upstream is full: the handler holds the client's reads back.
        rig.client.pipeline.read()
        let holds = try rig.client.readOutbound(as: HTTPServerResponsePart.self)
        #expect(holds == nil)
        rig.upstreams[0].isWritable = true
        rig.upstreams[0].pipeline.fireChannelWritabilityChanged()
        try rig.send(.body(ByteBuffer(string: "def")), .end(nil))
        #expect(try rig.upstreamParts() == [.body(.byteBuffer(ByteBuffer(string: "def"))), .end(nil)])
        try rig.respond(0, Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil))
        #expect(status(try rig.clientParts()) == [200])
        #expect(rig.leased == 0 && rig.idle == 1)
    }

    @Test func expectContinueIsAnsweredOnceTheUpstreamIsReady() throws {
        let rig = try Rig()
        try rig.send(Self.head(.PUT, "/api/e", [("X-CSRF", "1"), ("Content-Length", "2"), ("Expect", "100-continue")]))
        #expect(status(try rig.clientParts()) == [100])
        let up = try rig.upstreamParts()
        guard case .head(let head) = up.first else { throw Failure("no head") }
        #expect(head.headers["Expect"].isEmpty, "the gateway answers the expectation itself")
        try rig.send(.body(ByteBuffer(string: "hi")), .end(nil))
        #expect(try rig.upstreamParts().count == 2)
    }

    @Test func theClientGoingAwayBeforeTheHeadClosesTheUpstreamConnection() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/gone"), .end(nil))
        _ = try rig.upstreamParts()
        rig.client.pipeline.fireChannelInactive()
        #expect(rig.leased == 0 && rig.idle == 0, "abandoned, not reused")
        #expect(!rig.upstreams[0].isActive)
    }

    @Test func theClientGoingAwayMidBodyClosesTheUpstreamConnection() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/mid"), .end(nil))
        try rig.respond(
            0, .head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "10"])),
            .body(ByteBuffer(string: "12345")))
        #expect(status(try rig.clientParts()) == [200])
        rig.client.pipeline.fireChannelInactive()
        #expect(rig.leased == 0 && rig.idle == 0)
        #expect(!rig.upstreams[0].isActive)
    }

    @Test func anUploadCutShortByTheClientNeverReturnsItsConnection() throws {
        let rig = try Rig()
        try rig.send(Self.head(.POST, "/api/cut", [("X-CSRF", "1"), ("Content-Length", "100")]))
        try rig.send(.body(ByteBuffer(string: "only ten b")))
        rig.client.pipeline.fireChannelInactive()
        #expect(rig.leased == 0 && rig.idle == 0, "half a body went up: the connection is closed")
    }

    @Test func theUpstreamClosingMidBodyClosesTheClientConnection() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/cut"), .end(nil))
        try rig.respond(
            0, .head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "10"])),
            .body(ByteBuffer(string: "12345")))
        rig.upstreams[0].pipeline.fireChannelInactive()
        rig.loop.run()
        #expect(!rig.client.isActive, "a truncated response cannot be completed: the client connection closes")
        #expect(rig.leased == 0)
    }

    @Test func aSilentUpstreamIsCutOffAfterTheRouteTimeoutWith504() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/slow?m=t"), .end(nil))
        rig.loop.advanceTime(by: .seconds(5))
        rig.loop.run()
        let back = try rig.clientParts()
        #expect(status(back) == [504])
        #expect(rig.leased == 0 && rig.idle == 0)
        #expect(rig.client.isActive, "the client connection stays usable")
        #expect(rig.calls.events(for: "m=t").first?.upstreamStatus == nil)
    }

    @Test func pipelinedCallsAreForwardedOneAfterTheOther() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/first"), .end(nil), Self.head("/api/second"), .end(nil))
        let first = try rig.upstreamParts()
        #expect(first.count == 2, "only the first request went up: \(first)")
        try rig.respond(0, Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil))
        let second = try rig.upstreamParts()
        guard case .head(let head) = second.first else { throw Failure("the second request did not follow") }
        #expect(head.uri == "/up/second", "on the connection the first one returned")
        try rig.respond(0, Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil))
        #expect(status(try rig.clientParts()) == [200, 200])
    }

    @Test func aSlowReaderPausesTheUpstreamUntilItTakesMore() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/big"), .end(nil))
        rig.client.isWritable = false
        try rig.respond(
            0, .head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "6"])),
            .body(ByteBuffer(string: "abc")))
        // Reading the upstream is paused: a read request is held back.
        rig.upstreams[0].pipeline.read()
        rig.client.isWritable = true
        rig.client.pipeline.fireChannelWritabilityChanged()
        try rig.respond(0, .body(ByteBuffer(string: "def")), .end(nil))
        #expect(try rig.clientParts().count == 4)
        #expect(rig.idle == 1)
    }

    @Test func quiescingWaitsForTheCallInFlight() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/q"), .end(nil))
        rig.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(rig.client.isActive)
        try rig.respond(0, Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil))
        rig.loop.run()
        #expect(!rig.client.isActive, "closed once the response ended")
        #expect(status(try rig.clientParts()) == [200], "and that response was sent before the close")
    }

    /// The upstream's answer arrives in one loop round (no `run()`): the client's response waits
    /// for the round's end (``LoopFlushes``).
    func answerInOneRound(_ rig: Rig) throws {
        for part: HTTPClientResponsePart in [Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil)] {
            rig.upstreams[0].pipeline.syncOperations.fireChannelRead(NIOAny(part))
        }
        rig.upstreams[0].pipeline.syncOperations.fireChannelReadComplete()
    }

    @Test func aResponseIsFlushedWhenTheLoopsRoundEnds() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/r"), .end(nil))
        try answerInOneRound(rig)
        #expect(try rig.clientParts(roundEnded: false).isEmpty, "not flushed before the round ends")
        rig.loop.run()
        #expect(try rig.clientParts().count == 3)
        #expect(rig.client.isActive && rig.idle == 1)
    }

    @Test func quiescingInTheRoundOfAResponsesEndClosesAfterTheResponse() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/q"), .end(nil))
        try answerInOneRound(rig)
        rig.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!rig.client.isActive, "idle, so closed at once")
        let back = try rig.clientParts(roundEnded: false)
        #expect(status(back) == [200] && back.count == 3, "the response written in this round went first: \(back)")
    }

    @Test func aClientHalfCloseInTheRoundOfAResponsesEndKeepsThatResponse() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/first"), .end(nil), Self.head("/api/second"), .end(nil))
        #expect(try rig.upstreamParts().count == 2)
        // The first answer ends (the second call goes up) and the client's FIN comes, in one round.
        try answerInOneRound(rig)
        rig.client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!rig.client.isActive, "a call in flight when the client half-closes ends the connection")
        #expect(status(try rig.clientParts(roundEnded: false)) == [200], "the first response went before the close")
        #expect(rig.leased == 0)
    }

    @Test func aCloseFromTheHandlersBehindFlushesTheResponseFirst() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/c"), .end(nil))
        try answerInOneRound(rig)
        rig.client.close(promise: nil)  // from the pipeline's tail, as Hummingbird's handlers close
        #expect(!rig.client.isActive)
        let back = try rig.clientParts(roundEnded: false)
        #expect(status(back) == [200] && back.count == 3, "the response written in this round went first: \(back)")
    }

    @Test func aRefusedUploadIsDroppedAndTheNextCallIsServed() throws {
        let rig = try Rig()
        try rig.send(
            Self.head(.POST, "/api/x?m=r", [("Content-Length", "4")]), .body(ByteBuffer(string: "evil")), .end(nil))
        #expect(status(try rig.clientParts()) == [401])
        #expect(try rig.upstreamParts().isEmpty, "nothing of the refused call went up")
        try rig.send(Self.head("/api/after"), .end(nil))
        #expect(try rig.upstreamParts().count == 2)
    }

    @Test func requestsOutsideTheAPIRoutesGoToTheRouterAndAPICallsWaitBehindThem() throws {
        let rig = try Rig()
        try rig.send(Self.head("/bff/user"), .end(nil), Self.head("/api/next"), .end(nil))
        #expect(rig.router.parts.count == 2, "the router got its request")
        #expect(try rig.upstreamParts().isEmpty, "the API call waits for the router's response")
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "0"])
        try rig.client.writeOutbound(HTTPServerResponsePart.head(head))
        try rig.client.writeOutbound(HTTPServerResponsePart.end(nil))
        #expect(try rig.upstreamParts().count == 2, "then goes up")
    }

    // MARK: the second review's findings

    /// HTTP/1.0 has no chunked coding: a response without a length to an HTTP/1.0 keep-alive
    /// client ends with the connection (else the next response would read as more of this body).
    @Test func anHTTP10ResponseWithoutALengthClosesTheConnection() throws {
        let rig = try Rig()
        let head = HTTPRequestHead(
            version: .http1_0, method: .GET, uri: "/api/old", headers: ["X-CSRF": "1", "Connection": "keep-alive"])
        try rig.send(.head(head), .end(nil))
        try rig.respond(
            0, .head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Transfer-Encoding": "chunked"])),
            .body(ByteBuffer(string: "ab")), .end(nil))
        rig.loop.run()
        let back = try rig.clientParts()
        guard case .head(let browserHead) = back.first else { throw Failure("no head") }
        #expect(browserHead.headers["Connection"] == ["close"])
        #expect(!rig.client.isActive, "closed once the body is out")
    }

    /// A chunked HTTP/1.0 request is faulty (RFC 9112 §6.1): 400 and the connection closes, even
    /// when it asked for keep-alive (its body's framing cannot be trusted).
    @Test func aChunkedHTTP10CallIsRefusedAndTheConnectionCloses() throws {
        let rig = try Rig()
        let head = HTTPRequestHead(
            version: .http1_0, method: .POST, uri: "/api/te",
            headers: ["X-CSRF": "1", "Connection": "keep-alive", "Transfer-Encoding": "chunked"])
        try rig.send(.head(head))
        rig.loop.run()
        #expect(status(try rig.clientParts()) == [400])
        #expect(!rig.client.isActive)
        #expect(try rig.upstreamParts().isEmpty)
    }

    /// An `Expect: 100-continue` call refused at once: the body may or may not follow, so the
    /// connection closes after the refusal (the body must never be read as the next request).
    @Test func aRefusedExpectContinueCallClosesTheConnection() throws {
        let rig = try Rig()
        try rig.send(Self.head(.POST, "/api/x", [("Content-Length", "20"), ("Expect", "100-continue")]))
        rig.loop.run()
        let back = try rig.clientParts()
        #expect(status(back) == [401])
        guard case .head(let refusal) = back.first else { throw Failure("no head") }
        #expect(refusal.headers["Connection"] == ["close"])
        #expect(!rig.client.isActive)
    }

    /// Malformed bytes behind an API call in progress: no 400 is injected into its response; the
    /// response completes, then the connection closes.
    @Test func malformedInputBehindACallInProgressClosesAfterItsResponse() throws {
        let rig = try Rig()
        try rig.send(Self.head("/api/m"), .end(nil))
        rig.client.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        #expect(rig.client.isActive, "the response in progress is completed first")
        try rig.respond(0, Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil))
        rig.loop.run()
        #expect(status(try rig.clientParts()) == [200])
        #expect(!rig.client.isActive)
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension APICallHandlerTests {
    /// RFC 9470: an upstream's step-up challenge is answered with the step-up problem before any
    /// byte of the upstream's response reaches the client; its connection is closed, not pooled,
    /// and the next call goes out on another one.
    @Test func anUpstreamStepUpChallengeBecomesTheProblemAndItsConnectionIsClosed() async throws {
        let rig = try Rig()
        // A signed-in caller with a fresh token (the memory store answers at once: no suspension).
        let now = SystemTimeSource().now
        let cookies = try await rig.bff.sessions.create(
            Session(
                issuer: "https://idp", subject: "alice", idpSessionID: nil, logoutID: "l", claimsJSON: Array("{}".utf8),
                tokens: TokenSet(accessToken: "at", accessTokenExpiresAt: now + 3600), createdAt: now, renewedAt: now),
            replacing: nil, cookies: CookieHeader(bytes: []))
        let cookie = ("Cookie", cookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; "))
        try rig.send(Self.head("/user-api/admin", [("X-CSRF", "1"), cookie]), .end(nil))
        _ = try rig.upstreamParts(0)
        #expect(rig.leased == 1)
        try rig.respond(
            0,
            .head(
                HTTPResponseHead(
                    version: .http1_1, status: .unauthorized,
                    headers: [
                        "WWW-Authenticate": #"Bearer error="insufficient_user_authentication", acr_values="mfa""#,
                        "Content-Length": "9",
                    ])), .body(ByteBuffer(string: "upstream!")), .end(nil))
        let back = try rig.clientParts()
        #expect(status(back) == [401])
        let body = back.compactMap { part -> String? in
            if case .body(.byteBuffer(let buffer)) = part { return String(buffer: buffer) }
            return nil
        }.joined()
        #expect(body.contains(#""type":"urn:bff:problem:step-up-required""#) && body.contains(#""acrValues":"mfa""#))
        #expect(!body.contains("upstream!"))
        #expect(!rig.upstreams[0].isActive, "the challenged connection is closed")
        #expect(rig.leased == 0 && rig.idle == 0)
        try rig.addUpstream()
        try rig.send(Self.head("/api/next"), .end(nil))
        #expect(try rig.upstreamParts(1).count == 2, "the next call uses the other connection")
        try rig.respond(1, Self.okHead, .body(ByteBuffer(string: "ok")), .end(nil))
        #expect(status(try rig.clientParts()) == [200])
        #expect(rig.leased == 0 && rig.idle == 1)
    }
}
