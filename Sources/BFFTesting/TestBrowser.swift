import AsyncHTTPClient
import BFFCore
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A cookie-keeping HTTP client for tests that never follows redirects by itself.
///
/// Cookies are kept per host (port-insensitive, like browsers), honour `Max-Age=0` deletion and
/// are sent back to the same host. `Secure` is ignored (tests run on loopback, where browsers
/// accept Secure cookies over http as well).
public final class TestBrowser: Sendable {
    private struct State {
        var jar: [String: [String: String]] = [:]
        var setCookieLines: [String] = []
    }
    private let state = Mutex(State())
    /// Raw `Set-Cookie` lines seen, newest last (tests inspect attributes).
    public var setCookieLines: [String] { state.withLock { $0.setCookieLines } }
    let client: HTTPClient

    /// A response.
    public struct Page: Sendable {
        /// Status code.
        public var status: Int
        /// Headers (names lower-cased).
        public var headers: [(String, String)]
        /// Body as text.
        public var body: String
        /// The URL that was requested.
        public var url: String

        /// First value of a header.
        public func header(_ name: String) -> String? { headers.first { $0.0 == name.lowercased() }?.1 }
        /// All values of a header.
        public func headerValues(_ name: String) -> [String] { headers.filter { $0.0 == name.lowercased() }.map(\.1) }
        /// The absolute redirect target, if this is a redirect.
        public var location: String? {
            guard let location = header("location") else { return nil }
            if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
            guard let base = WebURL(url) else { return location }
            return base.origin + location
        }
    }

    /// Creates a browser with its own HTTP client (call ``shutdown()``).
    public init() {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Shuts the HTTP client down.
    public func shutdown() async throws { try await client.shutdown() }

    deinit {
        // A test that failed before calling shutdown() must fail alone, not end the whole run
        // (AsyncHTTPClient traps on a client dropped without shutdown): shut it down in the
        // background (it keeps itself alive until done; a second shutdown is only an error here).
        client.shutdown { _ in }
    }

    /// Cookies currently held for `host`.
    public func cookies(host: String) -> [String: String] { state.withLock { $0.jar[host] ?? [:] } }

    /// Sets or removes a cookie by hand (tampering tests).
    public func setCookie(host: String, name: String, value: String?) {
        state.withLock { $0.jar[host, default: [:]][name] = value }
    }

    /// Sends a request with the jar's cookies for the URL's host.
    public func request(
        _ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        sendCookies: Bool = true
    ) async throws -> Page {
        guard let parsed = WebURL(url) else { throw TestBrowserError(message: "bad URL \(url)") }
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if sendCookies {
            let cookies = state.withLock { $0.jar[parsed.host] ?? [:] }
            if !cookies.isEmpty {
                request.headers.add(
                    name: "cookie",
                    value: cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; "))
            }
        }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 16 << 20)
        let page = Page(
            status: Int(response.status.code), headers: response.headers.map { ($0.name.lowercased(), $0.value) },
            body: String(buffer: buffer), url: url)
        store(page.headerValues("set-cookie"), host: parsed.host)
        return page
    }

    /// GET.
    public func get(_ url: String, headers: [(String, String)] = []) async throws -> Page {
        try await request("GET", url, headers: headers)
    }

    /// POST a form.
    public func postForm(_ url: String, _ fields: [(String, String)], headers: [(String, String)] = []) async throws
        -> Page
    {
        try await request(
            "POST", url, headers: headers + [("content-type", "application/x-www-form-urlencoded")],
            body: Array(FormEncoding.encode(fields).utf8))
    }

    /// Sends a JSON body.
    public func sendJSON(_ method: String, _ url: String, _ json: String) async throws -> Page {
        try await request(method, url, headers: [("content-type", "application/json")], body: Array(json.utf8))
    }

    /// Follows redirects from `page` until a non-redirect or a URL matching `stop`.
    public func follow(_ page: Page, limit: Int = 10, stopAt stop: (String) -> Bool = { _ in false }) async throws
        -> Page
    {
        var current = page
        for _ in 0..<limit {
            guard (300..<400).contains(current.status), let next = current.location, !stop(next) else { return current }
            current = try await get(next)
        }
        throw TestBrowserError(message: "too many redirects")
    }

    func store(_ lines: [String], host: String) {
        guard !lines.isEmpty else { return }
        state.withLock { state in
            state.setCookieLines.append(contentsOf: lines)
            for line in lines {
                let parts = line.split(separator: ";", omittingEmptySubsequences: false).map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                guard let first = parts.first, let equals = first.firstIndex(of: "=") else { continue }
                let name = String(first[..<equals])
                let value = String(first[first.index(after: equals)...])
                let deleted = parts.dropFirst().contains { $0.lowercased() == "max-age=0" } || value.isEmpty
                if deleted { state.jar[host]?[name] = nil } else { state.jar[host, default: [:]][name] = value }
            }
        }
    }
}

/// A test-browser failure.
public struct TestBrowserError: Error, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// Creates an error.
    public init(message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
