import BFFCore
import BFFTesting
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

@testable import BFFGateway

/// `static.indexUrl` (SPEC §11.3): index.html from an origin, cached by its ETag and max-age,
/// revalidated, served stale when the origin fails; other files proxied to the same origin without
/// the session.
@Suite("index.html from a CDN or origin (static.indexUrl)")
struct IndexDocumentTests {
    /// The CDN: `/app/index.html` (version, ETag, max-age 60, 304 on a matching If-None-Match) and
    /// `/app/assets/x.js`; can be switched to fail.
    final class Origin: Sendable {
        let port: Int
        let version = Mutex(1)
        let failing = Mutex(false)
        let requests = Mutex<[String]>([])
        let cookiesSeen = Mutex(0)

        init(port: Int) { self.port = port }

        func application() -> some ApplicationProtocol {
            let router = Router()
            router.get("app/index.html") { request, _ -> Response in
                self.requests.withLock { $0.append("index " + (request.headers[.ifNoneMatch] ?? "-")) }
                if request.headers[.cookie] != nil { self.cookiesSeen.withLock { $0 += 1 } }
                if self.failing.withLock({ $0 }) { return Response(status: .serviceUnavailable) }
                let version = self.version.withLock { $0 }
                let etag = "\"v\(version)\""
                if request.headers[.ifNoneMatch] == etag {
                    return Response(status: .notModified, headers: [.eTag: etag, .cacheControl: "max-age=60"])
                }
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/html; charset=utf-8", .eTag: etag, .cacheControl: "max-age=60"],
                    body: .init(byteBuffer: ByteBuffer(string: "<html>app v\(version)</html>")))
            }
            router.get("app/assets/x.js") { request, _ -> Response in
                self.requests.withLock { $0.append("asset") }
                if request.headers[.cookie] != nil { self.cookiesSeen.withLock { $0 += 1 } }
                return Response(
                    status: .ok, headers: [.contentType: "text/javascript"],
                    body: .init(byteBuffer: ByteBuffer(string: "console.log(1)")))
            }
            return Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                logger: TestEnvironment.quietLogger)
        }
    }

    static let html = [("Accept", "text/html,application/xhtml+xml")]

    @Test func navigationsGetTheCachedDocumentRevalidatedByETagAndStaleWhenTheOriginFails() async throws {
        let origin = Origin(port: try await TestServers.freePort())
        let clock = ManualTimeSource(now: SystemTimeSource().now)
        try await TestEnvironment.run(
            extraServices: [origin.application()], extraPorts: [origin.port], gatewayTime: clock,
            configure: { settings in
                settings.staticFiles.root = nil
                settings.staticFiles.indexURL = "http://127.0.0.1:\(origin.port)/app/index.html"
            }
        ) { env, browser in
            try await env.login(browser)
            // Two navigations, one fetch; no cookie reaches the origin.
            for path in ["/", "/orders/7"] {
                let page = try await browser.get(env.origin + path, headers: Self.html)
                #expect(page.status == 200)
                #expect(page.body == "<html>app v1</html>")
                #expect(page.header("cache-control") == "no-cache")
            }
            #expect(origin.requests.withLock { $0 } == ["index -"])
            // The browser's own revalidation against the gateway.
            let again = try await browser.get(env.origin + "/", headers: Self.html + [("If-None-Match", "\"v1\"")])
            #expect(again.status == 304)
            // After max-age: revalidated with If-None-Match (304: the same copy, fresh again).
            clock.advance(by: 61)
            #expect(try await browser.get(env.origin + "/x", headers: Self.html).body == "<html>app v1</html>")
            #expect(origin.requests.withLock { $0 } == ["index -", "index \"v1\""])
            // A new version is picked up at the next revalidation.
            origin.version.withLock { $0 = 2 }
            clock.advance(by: 61)
            #expect(try await browser.get(env.origin + "/x", headers: Self.html).body == "<html>app v2</html>")
            // The origin fails: the last good copy is served.
            origin.failing.withLock { $0 = true }
            clock.advance(by: 61)
            let stale = try await browser.get(env.origin + "/y", headers: Self.html)
            #expect(stale.status == 200)
            #expect(stale.body == "<html>app v2</html>")
            // Assets come from the same origin, without the session; the BFF's paths and API routes stay the BFF's.
            let asset = try await browser.get(env.origin + "/app/assets/x.js")
            #expect(asset.status == 200)
            #expect(asset.body == "console.log(1)")
            #expect(try await browser.get(env.origin + "/bff/user", headers: env.csrf + Self.html).status == 200)
            #expect(origin.cookiesSeen.withLock { $0 } == 0, "the origin never sees the session cookie")
        }
    }

    @Test func withoutAnyCopyANavigationIs502() async throws {
        let port = try await TestServers.freePort()  // nothing listens there
        try await TestEnvironment.run(
            configure: { settings in
                settings.staticFiles.root = nil
                settings.staticFiles.indexURL = "http://127.0.0.1:\(port)/index.html"
            }
        ) { env, browser in
            let page = try await browser.get(env.origin + "/", headers: Self.html)
            #expect(page.status == 502)
            #expect(page.body.contains("urn:bff:problem:upstream-unavailable"))
        }
    }

    @Test func maxAgeParsing() {
        #expect(IndexDocument.maxAge(nil) == 300)
        #expect(IndexDocument.maxAge("public, max-age=60") == 60)
        #expect(IndexDocument.maxAge("max-age=999999999") == 86_400)
        #expect(IndexDocument.maxAge("no-cache") == 0)
        #expect(IndexDocument.maxAge("max-age=60, no-store") == 0)
        #expect(IndexDocument.maxAge("max-age=-5") == 300)
    }

    @Test func indexUrlIsValidated() {
        var configuration = BFFConfiguration()
        configuration.staticFiles.indexURL = "http://cdn.example.com/index.html"
        #expect(configuration.validate().contains { $0.path == "static.indexUrl" && $0.message.contains("plain http") })
        configuration.staticFiles.indexURL = "https://cdn.example.com/index.html"
        #expect(!configuration.validate().contains { $0.path == "static.indexUrl" })
        configuration.staticFiles.devServer = "http://127.0.0.1:5173"
        #expect(configuration.validate().contains { $0.path == "static.indexUrl" && $0.message.contains("devServer") })
        configuration.staticFiles.devServer = nil
        configuration.staticFiles.indexURL = "https://user@cdn.example.com/index.html"
        #expect(configuration.validate().contains { $0.path == "static.indexUrl" })
    }
}
