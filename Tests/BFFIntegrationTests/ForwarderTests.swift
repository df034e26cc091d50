import AsyncHTTPClient
import BFFCore
import BFFForwarder
import BFFTesting
import Crypto
import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOPosix
import Synchronization
import Testing

@Suite("NIO forwarder on real sockets")
struct ForwarderTests {
    let harness = RemoteAPITests()

    func echoed(_ page: TestBrowser.Page) throws -> EchoedRequest {
        try #require(page.status == 200, "status \(page.status): \(page.body)")
        return try EchoedRequest(json: page.body)
    }

    @Test func keepAliveConnectionsAreReused() async throws {
        try await harness.withProxy { env, browser, _ in
            var ports = Set<Int>()
            for _ in 0..<20 {
                ports.insert(try echoed(try await browser.get(env.origin + "/api/public", headers: env.csrf)).peerPort)
            }
            // One inbound keep-alive connection: its event loop's pool serves every request from one upstream connection.
            #expect(ports.count == 1)
            #expect(env.forwarder.statistics.leased == 0)
            #expect(env.forwarder.statistics.idle == 1)
        }
    }

    @Test func upstreamClosingIdleConnectionsDoesNotFailRequests() async throws {
        try await harness.withProxy(upstreamIdleTimeout: .seconds(1)) { env, browser, _ in
            var failures = 0
            var total = 0
            // At least three bursts, however slow the machine (the interesting moments are the pauses).
            let deadline = ContinuousClock.now + .seconds(4)
            while ContinuousClock.now < deadline || total < 24 {
                // Bursts separated by pauses just around the upstream's idle timeout.
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<8 {
                        group.addTask { try await browser.get(env.origin + "/api/public", headers: env.csrf).status }
                    }
                    for try await status in group {
                        total += 1
                        if status != 200 { failures += 1 }
                    }
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 900...1150)))
            }
            #expect(total >= 24)
            #expect(failures == 0, "\(failures) of \(total) GETs failed")
        }
    }

    @Test func staleKeepAliveConnectionIsRetriedOnceForIdempotentRequests() async throws {
        let upstream = try await StaleConnectionUpstream()
        let forwarder = NIOUpstream()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        func get() async throws -> UpstreamResponse {
            try await forwarder.send(
                UpstreamRequest(
                    method: .get, url: "http://127.0.0.1:\(upstream.port)/x", headers: [:], contentLength: nil,
                    timeout: .seconds(5), eventLoop: loop), body: nil)
        }
        for _ in 0..<5 {
            let response = try await get()
            #expect(response.head.status == .ok)
            try await response.body.write(DiscardingWriter())
        }
        // A POST is not retried: the stale connection fails it with 502-worthy unavailability.
        try await get().body.write(DiscardingWriter())  // leaves a pooled connection that the upstream will drop
        await #expect(throws: UpstreamError.self) {
            _ = try await forwarder.send(
                UpstreamRequest(
                    method: .post, url: "http://127.0.0.1:\(upstream.port)/x", headers: [:], contentLength: 0,
                    timeout: .seconds(5), eventLoop: loop), body: nil)
        }
        forwarder.shutdown()
        await upstream.close()
    }

    @Test func headAndNoContent() async throws {
        try await harness.withProxy { env, browser, _ in
            let head = try await browser.request("HEAD", env.origin + "/api/public", headers: env.csrf)
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            let noContent = try await browser.get(env.origin + "/api/misc/nocontent", headers: env.csrf)
            #expect(noContent.status == 204)
            // The connection is still usable afterwards.
            #expect(try await browser.get(env.origin + "/api/public", headers: env.csrf).status == 200)
        }
    }

    @Test func chunkedUploadWithoutContentLength() async throws {
        try await harness.withProxy { env, _, _ in
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            defer { _ = client }
            var request = HTTPClientRequest(url: env.origin + "/api/public/chunked")
            request.method = .POST
            request.headers.add(name: "X-CSRF", value: "1")
            let chunks = (0..<40).map { index in ByteBuffer(bytes: Array(repeating: UInt8(index), count: 10_000)) }
            request.body = .stream(ChunkSequence(chunks: chunks), length: .unknown)
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
            let seen = try EchoedRequest(json: String(buffer: body))
            #expect(seen.bodyLength == 400_000)
            let expected = chunks.reduce(into: SHA256()) { $0.update(data: Array($1.readableBytesView)) }.finalize()
            #expect(seen.bodySHA256 == expected.map { String(format: "%02x", $0) }.joined())
        }
    }

    @Test func hundredMegabytesBothWaysWithBoundedMemory() async throws {
        try await harness.withProxy { env, _, _ in
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            let before = residentMegabytes()
            var peak = before
            // Download: 100 MB streamed through the gateway, hashed as it arrives.
            var download = HTTPClientRequest(url: env.origin + "/api/bulk/download/104857600")
            download.headers.add(name: "X-CSRF", value: "1")
            let response = try await client.execute(download, timeout: .seconds(120))
            var received = 0
            var hasher = SHA256()
            var sampled = 0
            for try await buffer in response.body {
                received += buffer.readableBytes
                hasher.update(data: Array(buffer.readableBytesView))
                sampled += 1
                if sampled % 64 == 0 { peak = max(peak, residentMegabytes()) }
            }
            #expect(received == 104_857_600)
            let expected = SHA256.hash(data: Array(repeating: UInt8(ascii: "x"), count: 104_857_600))
            #expect(hasher.finalize() == expected)
            // Upload: 100 MB generated on the fly; the upstream hashes it.
            var upload = HTTPClientRequest(url: env.origin + "/api/public/upload")
            upload.method = .POST
            upload.headers.add(name: "X-CSRF", value: "1")
            upload.body = .stream(GeneratedBody(total: 104_857_600), length: .known(Int64(104_857_600)))
            let uploaded = try await client.execute(upload, timeout: .seconds(120))
            let echoedBody = try await uploaded.body.collect(upTo: 1 << 20)
            peak = max(peak, residentMegabytes())
            try await client.shutdown()
            let seen = try EchoedRequest(json: String(buffer: echoedBody))
            #expect(seen.bodyLength == 104_857_600)
            #expect(seen.bodySHA256 == GeneratedBody.expectedSHA256(total: 104_857_600))
            // Everything (test client, gateway, upstream) runs in this process: growth stays far below the 200 MB moved.
            #expect(peak - before < 64, "RSS grew from \(before) MB to \(peak) MB")
        }
    }

    @Test func oneKeepAliveConnectionServesManyFastRequestsInOrder() async throws {
        try await harness.withProxy { env, _, _ in
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(
                idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 1)
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            do {
                // One client connection: the first call opens the upstream connection on its event
                // loop, every later one finds it idle and takes the fast path, on the same socket.
                for index in 0..<30 {
                    let head = index % 5 == 4
                    var request = HTTPClientRequest(
                        url: env.origin + (head ? "/api/misc/echo/h" : "/api/bulk/status/\(200 + index % 3)"))
                    request.method = head ? .HEAD : .GET
                    request.headers.add(name: "X-CSRF", value: "1")
                    let response = try await client.execute(request, timeout: .seconds(5))
                    #expect(Int(response.status.code) == (head ? 200 : 200 + index % 3))
                    let body = try await response.body.collect(upTo: 1 << 16)
                    #expect(String(buffer: body) == (head ? "" : "status \(200 + index % 3)"))
                }
                #expect(env.forwarder.fastExchangeCount >= 29)
            } catch {
                try? await client.shutdown()
                throw error
            }
            try await client.shutdown()
        }
    }

    @Test(arguments: [false, true])
    func clientDisconnectMidBodyReleasesTheUpstreamConnection(warm: Bool) async throws {
        try await harness.withProxy { env, browser, _ in
            if warm {
                // Idle upstream connections on every event loop first (concurrent calls spread over
                // the server's loops), so the download takes the event-loop fast path.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<8 {
                        group.addTask {  // justified: structured child task of the group
                            _ = try await browser.get(env.origin + "/api/bulk/status/200", headers: env.csrf)
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            var request = HTTPClientRequest(url: env.origin + "/api/bulk/download/104857600")
            request.headers.add(name: "X-CSRF", value: "1")
            let response = try await client.execute(request, timeout: .seconds(60))
            var received = 0
            for try await buffer in response.body {
                received += buffer.readableBytes
                if received > 2_000_000 { break }  // stop reading: AHC cancels and closes the connection
            }
            try await client.shutdown()
            let leased = try await eventually(every: .milliseconds(50), until: { $0 == 0 }) {
                env.forwarder.statistics.leased
            }
            #expect(leased == 0, "the upstream connection was released")
            if warm { #expect(env.forwarder.fastExchangeCount >= 1) }
        }
    }

    func gatewayPort(_ env: TestEnvironment) throws -> Int {
        try #require(env.origin.split(separator: ":").last.flatMap { Int($0) })
    }

    /// A slow-read attack: the client asks for a large response, takes its first bytes, then reads
    /// nothing more and stays connected. Without a bound the response — and the upstream connection
    /// behind it — would wait for ever; on either path.
    @Test(arguments: [false, true])
    func aClientThatStopsReadingIsCutOffAfterTheSendTimeout(warm: Bool) async throws {
        try await harness.withProxy(serverIdleTimeout: .seconds(2)) { env, browser, _ in
            if warm { try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200") }
            let fastBefore = env.forwarder.fastExchangeCount
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.autoRead, value: false)
                .connect(host: "127.0.0.1", port: try gatewayPort(env)).get()
            try await channel.writeAndFlush(
                ByteBuffer(string: "GET /api/misc/download/104857600 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n"))
            channel.read()
            let busy = try await eventually(every: .milliseconds(50), until: { $0 == 1 }) {
                env.forwarder.statistics.leased
            }
            #expect(busy == 1, "the download holds an upstream connection")
            let started = ContinuousClock.now
            let leased = try await eventually(attempts: 400, every: .milliseconds(50), until: { $0 == 0 }) {
                env.forwarder.statistics.leased
            }
            #expect(leased == 0, "given up after the send timeout, upstream connection released")
            // The check fires once the kernel's buffers stopped taking bytes for 2 s; loopback
            // auto-tuning keeps growing them for a while, longer on a loaded machine (10 s seen in CI).
            #expect(ContinuousClock.now - started < .seconds(20))
            if warm { #expect(env.forwarder.fastExchangeCount > fastBefore, "the download took the fast path") }
            try await channel.close()
        }
    }

    /// The send check's false positive: a client that reads slowly but steadily must not be taken
    /// for one that stopped. Behind a large (auto-tuned) kernel send buffer the socket turns
    /// writable again only after a third of it drained — seconds at a mobile client's pace, longer
    /// than the check's interval — unless the gateway bounds the unsent bytes it leaves there.
    @Test func aSlowButSteadyReaderIsNotCutOff() async throws {
        try await harness.withProxy(serverIdleTimeout: .seconds(2)) { env, _, _ in
            final class Counter: ChannelInboundHandler, Sendable {
                typealias InboundIn = ByteBuffer
                let bytes = Mutex(0)
                func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                    let count = unwrapInboundIn(data).readableBytes
                    bytes.withLock { $0 += count }
                }
            }
            let counter = Counter()
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.autoRead, value: false)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(counter) }
                }
                .connect(host: "127.0.0.1", port: try gatewayPort(env)).get()
            try await channel.writeAndFlush(
                ByteBuffer(string: "GET /api/bulk/download/209715200 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n"))
            // 4 KiB every 100 ms (40 KiB/s) for 6 s, three times the 2 s send check.
            let started = ContinuousClock.now
            var lastCount = 0
            while ContinuousClock.now - started < .seconds(6) {
                channel.read()
                try await Task.sleep(for: .milliseconds(100))
                let count = counter.bytes.withLock { $0 }
                lastCount = count
                if !channel.isActive { break }
            }
            #expect(channel.isActive, "a client reading 40 KiB/s was cut off after \(ContinuousClock.now - started)")
            #expect(lastCount > 150_000, "it received \(lastCount) bytes")
            try? await channel.close()
        }
    }

    /// Pipelined requests, some for the fast path and some for the router (a refusal, a body),
    /// sent in one write: answered completely and in order.
    @Test func pipelinedRequestsAcrossBothPathsAreAnsweredInOrder() async throws {
        try await harness.withProxy { env, browser, _ in
            try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200")
            let fastBefore = env.forwarder.fastExchangeCount
            let requests = [
                "GET /api/bulk/status/201 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "GET /api/bulk/status/202 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "GET /api/bulk/status/203 HTTP/1.1\r\nHost: localhost\r\n\r\n",  // no X-CSRF: 401 from the router
                "POST /api/misc/echo/p HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nContent-Length: 3\r\n\r\nabc",
                "GET /api/bulk/status/205 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "HEAD /api/misc/echo/h HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "GET /api/bulk/status/200 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n",
            ]
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: try gatewayPort(env)) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let received = try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: requests.joined()))
                var received = ""
                for try await buffer in inbound { received += String(buffer: buffer) }  // until the server closes
                return received
            }
            // Bodies ("status 201") end without a line break: find every status line anywhere.
            let statuses = received.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["201", "202", "401", "200", "205", "200", "200"])
            #expect(env.forwarder.fastExchangeCount >= fastBefore + 2)
        }
    }

    /// The review's wedge: on a cold gateway the first call waits for a new upstream connection;
    /// the requests pipelined behind it (a body, a third call) must all be answered, in order.
    @Test func pipelinedRequestsBehindOneThatWaitsAreAllAnswered() async throws {
        try await harness.withProxy { env, _, _ in
            let requests = [
                "GET /api/bulk/status/201 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n",
                "POST /api/misc/echo/p HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nContent-Length: 5\r\n\r\nhello",
                "GET /api/bulk/status/202 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n",
            ]
            let received = try await RawHTTP.exchangeUntilClosed(port: try gatewayPort(env), request: requests.joined())
            let statuses = received.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["201", "200", "202"], "\(received.prefix(600))")
            #expect(received.contains("\"bodyLength\":5"), "the body went up with its request")
        }
    }

    /// The idle timeout counts from the last response: a connection in use (fast requests, which
    /// Hummingbird's own connection handler never sees) stays open past it; an idle one is closed.
    @Test func busyFastConnectionsOutliveTheIdleTimeoutAndIdleOnesAreClosed() async throws {
        try await harness.withProxy(serverIdleTimeout: .seconds(2)) { env, browser, _ in
            try await harness.warmUpstreamPools(env, browser, path: "/api/bulk/status/200")
            let fastBefore = env.forwarder.fastExchangeCount
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: try gatewayPort(env)) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            try await channel.executeThenClose { inbound, outbound in
                var responses = inbound.makeAsyncIterator()
                // 12 requests 500 ms apart on one connection: 6 s of use, idle timeout 2 s (margins a loaded
                // 2-core runner keeps).
                for index in 0..<12 {
                    try await outbound.write(
                        ByteBuffer(string: "GET /api/bulk/status/200 HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\n\r\n"))
                    var received = ""
                    while !received.hasSuffix("\r\n\r\nstatus 200") {
                        guard let buffer = try await responses.next() else {
                            Issue.record("closed while in use, before response \(index)")
                            return
                        }
                        received += String(buffer: buffer)
                    }
                    try await Task.sleep(for: .milliseconds(500))
                }
                let started = ContinuousClock.now
                let after = try? await responses.next()
                #expect(after == nil, "an idle connection is closed")
                #expect(ContinuousClock.now - started < .seconds(5))
            }
            #expect(env.forwarder.fastExchangeCount >= fastBefore + 11)
        }
    }
}

struct DiscardingWriter: ResponseBodyWriter {
    mutating func write(_ buffer: ByteBuffer) async throws {}
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

struct ChunkSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let chunks: [ByteBuffer]
    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: ArraySlice<ByteBuffer>
        mutating func next() async -> ByteBuffer? { remaining.popFirst() }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: chunks[...]) }
}

/// A deterministic body produced chunk by chunk, never held in memory as a whole.
struct GeneratedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let total: Int
    static let chunkSize = 65536

    static func chunk(_ index: Int, size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ index &* 7) }
    }

    static func expectedSHA256(total: Int) -> String {
        var hasher = SHA256()
        var index = 0
        var remaining = total
        while remaining > 0 {
            let size = Swift.min(chunkSize, remaining)
            hasher.update(data: chunk(index, size: size))
            remaining -= size
            index += 1
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: Int
        var index = 0
        mutating func next() async -> ByteBuffer? {
            guard remaining > 0 else { return nil }
            let size = Swift.min(GeneratedBody.chunkSize, remaining)
            defer {
                remaining -= size
                index += 1
            }
            return ByteBuffer(bytes: GeneratedBody.chunk(index, size: size))
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: total) }
}

/// This process's resident memory in MB (Linux).
func residentMegabytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
    return kilobytes / 1024
}
