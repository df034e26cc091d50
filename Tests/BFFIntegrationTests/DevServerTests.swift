import BFFCore
import BFFTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Testing

@testable import BFFGateway

/// `static.devServer`: a local dev server (page, assets, HMR WebSocket) behind the gateway, which
/// keeps the BFF's endpoints, the API routes and the session to itself.
@Suite("Dev-server mode")
struct DevServerTests {
    /// A tiny dev server: a page, an asset, an echo of what reached it, and an HMR socket that
    /// reports its handshake and echoes.
    static func devServer(port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html", .setCookie: "dev=1; Path=/"],
                body: .init(byteBuffer: ByteBuffer(string: "<html>dev page</html>")))
        }
        router.get("/src/main.js") { _, _ in "console.log('hmr')" }
        router.get("/danger") { _, _ in
            var headers = HTTPFields()
            headers[HTTPField.Name("Clear-Site-Data")!] = "\"cookies\""
            headers[HTTPField.Name("Set-Cookie2")!] = "a=1"
            headers[HTTPField.Name("X-Hop")!] = "1"
            headers[HTTPField.Name("X-Kept")!] = "1"
            headers[.connection] = "X-Hop"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "d")))
        }
        router.on("/seen/**", method: .post) { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            return seen(request) + " body=\(body.readableBytes)"
        }
        router.get("/seen/**") { request, _ in seen(request) }
        return Application(
            router: router,
            server: .http1WebSocketUpgrade { head, _, _ in
                let offered = head.headerFields[.secWebSocketProtocol] ?? "none"
                let cookie = head.headerFields[.cookie] != nil
                return .upgrade([.secWebSocketProtocol: "vite-hmr"]) { inbound, outbound, _ in
                    try await outbound.write(.text("protocol=\(offered) cookie=\(cookie) path=\(head.path ?? "")"))
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        if case .text(let text) = message { try await outbound.write(.text("hmr:" + text)) }
                    }
                }
            },
            configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: TestEnvironment.quietLogger)
    }

    static func seen(_ request: Request) -> String {
        "path=\(request.uri.description) cookie=\(request.headers[.cookie] != nil) "
            + "authorization=\(request.headers[.authorization] != nil) csrf=\(request.headers[HTTPField.Name("X-CSRF")!] ?? "-")"
    }

    func withDevServer(_ body: @Sendable (TestEnvironment, TestBrowser) async throws -> Void) async throws {
        let port = try await TestServers.freePort()
        try await TestEnvironment.run(
            extraServices: [Self.devServer(port: port)], extraPorts: [port],
            configure: { settings in
                settings.staticFiles.root = nil
                settings.staticFiles.devServer = "http://127.0.0.1:\(port)"
            }, body)
    }

    @Test func pagesAndAssetsComeFromTheDevServerWithoutTheSession() async throws {
        try await withDevServer { env, browser in
            try await env.login(browser)
            let page = try await browser.get(env.origin + "/")
            #expect(page.status == 200)
            #expect(page.body == "<html>dev page</html>")
            #expect(page.headerValues("set-cookie").isEmpty, "the dev server sets no cookie on the gateway's origin")
            #expect(try await browser.get(env.origin + "/src/main.js").body == "console.log('hmr')")
            // Nothing from the dev server can clear or set the gateway's cookies; hop-by-hop
            // fields it names are not passed on.
            let danger = try await browser.get(env.origin + "/danger")
            #expect(danger.header("x-kept") == "1")
            for name in ["clear-site-data", "set-cookie2", "x-hop"] { #expect(danger.header(name) == nil, "\(name)") }
            // The dev server never sees the session cookie or a token; bodies and queries pass.
            let seen = try await browser.get(env.origin + "/seen/a?x=1", headers: env.csrf)
            #expect(seen.body == "path=/seen/a?x=1 cookie=false authorization=false csrf=1")
            let posted = try await browser.request(
                "POST", env.origin + "/seen/b", headers: [("content-type", "text/plain")], body: Array("12345".utf8))
            #expect(posted.body.hasSuffix("body=5"), "\(posted.status) \(posted.body)")
            // The BFF's endpoints, callbacks and API routes stay the gateway's.
            #expect(try await env.user(browser).status == 200)
            let api = try await browser.get(env.origin + "/api/weatherforecast", headers: env.csrf)
            #expect(api.status == 200)
            #expect(!api.body.contains("path="), "answered by the API, not the dev server")
            #expect(try await browser.get(env.origin + "/signin-oidc?state=x&code=y").status != 200)
        }
    }

    @Test func theHMRSocketIsBridgedForTheGatewaysOwnPagesOnly() async throws {
        try await withDevServer { env, browser in
            try await env.login(browser)
            let port = WebSocketTests.port(env.origin)
            let cookie = WebSocketTests.cookieHeader(browser)
            let (status, received) = try await RawWebSocket.session(
                port: port, path: "/?token=abc",
                headers: [("Origin", env.origin), ("Cookie", cookie), ("Sec-WebSocket-Protocol", "vite-hmr")],
                messages: ["update"])
            #expect(status == 101)
            #expect(received == ["protocol=vite-hmr cookie=false path=/?token=abc", "hmr:update"])
            // Another site's page cannot open it; the BFF's own paths are never bridged.
            let (crossSite, _) = try await RawWebSocket.session(
                port: port, path: "/", headers: [("Origin", "https://evil.example")], messages: [])
            #expect(crossSite == 400)
            let (bffPath, _) = try await RawWebSocket.session(
                port: port, path: "/bff/user", headers: [("Origin", env.origin)], messages: [])
            #expect(bffPath == 400)
            // Nor an API route's path (a route without websocket: true declines the upgrade), an
            // escaping target or a subprotocol that is not a token.
            for (path, extra) in [
                ("/api/weatherforecast", [(String, String)]()), ("/x/../bff/user", []), ("/%2e%2e/bff/user", []),
                ("/", [("Sec-WebSocket-Protocol", "vite-hmr, a b")]),
            ] {
                let (declined, _) = try await RawWebSocket.session(
                    port: port, path: path, headers: [("Origin", env.origin), ("X-CSRF", "1")] + extra, messages: [])
                #expect(declined == 400, "\(path) \(extra)")
            }
        }
    }

    /// A dev server that is not running: 502 problem for its pages; the BFF keeps working.
    @Test func aDevServerThatIsDownGives502() async throws {
        let port = try await TestServers.freePort()
        try await TestEnvironment.run(
            configure: { settings in
                settings.staticFiles.root = nil
                settings.staticFiles.devServer = "http://127.0.0.1:\(port)"
            }
        ) { env, browser in
            let page = try await browser.get(env.origin + "/")
            #expect(page.status == 502)
            #expect(page.body.contains("urn:bff:problem:upstream-unavailable"))
            #expect(try await env.user(browser).status == 401)
        }
    }

    @Test func aRemoteDevServerIsRefusedOutsideDevelopment() throws {
        var configuration = BFFConfiguration()
        configuration.staticFiles.devServer = "http://192.0.2.10:5173"
        #expect(
            configuration.validate().contains {
                $0.path == "static.devServer" && $0.message.contains("is not a loopback address")
            })
        configuration.server.environment = "development"
        #expect(!configuration.validate().contains { $0.path == "static.devServer" })
        configuration.staticFiles.devServer = "http://127.0.0.1:5173/app?x=1"
        #expect(configuration.validate().contains { $0.path == "static.devServer" && $0.message.contains("origin") })
        for bad in ["http://127.0.0.1:5173#x", "http://user@127.0.0.1:5173"] {
            configuration.staticFiles.devServer = bad
            #expect(configuration.validate().contains { $0.path == "static.devServer" }, "\(bad)")
        }
        configuration.staticFiles.devServer = "http://127.0.0.1:5173"
        configuration.staticFiles.root = "/srv/spa"
        #expect(configuration.validate().contains { $0.message == "is set together with static.root" })
    }
}
