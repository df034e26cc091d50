import BFFCore
import Testing

@Suite("Proxy policy: routes, paths, headers, CIDRs, single flight")
struct ProxyPolicyTests {
    let table = RouteTable(routes: [
        APIRouteConfiguration(path: "/api/weather", upstream: "http://127.0.0.1:5090/weatherforecast"),
        APIRouteConfiguration(path: "/api/weather/admin", upstream: "http://127.0.0.1:5091/"),
        APIRouteConfiguration(path: "/api/", upstream: "http://127.0.0.1:5092"),
    ])

    @Test func longestSegmentPrefixWins() throws {
        let exact = try #require(table.match(path: "/api/weather"))
        #expect(exact.entry.prefix == "/api/weather")
        #expect(exact.remainder == "")
        let deeper = try #require(table.match(path: "/api/weather/today"))
        #expect(deeper.entry.prefix == "/api/weather")
        #expect(deeper.remainder == "/today")
        #expect(try #require(table.match(path: "/api/weather/admin/x")).entry.prefix == "/api/weather/admin")
    }

    @Test func noMatchAcrossASegmentBoundary() throws {
        let other = try #require(table.match(path: "/api/weatherx"))
        #expect(other.entry.prefix == "/api", "falls to /api, never to /api/weather")
        #expect(table.match(path: "/apix") == nil)
        #expect(table.match(path: "/") == nil)
    }

    @Test(arguments: [
        "/api/x", "/api/a/b.json", "/api/%20space", "/api/caf%C3%A9", "/api/~user", "/api/100%25", "/api/%25",
        "/api/a%2541", "/api/%252", "/api/%25zz", "/api/x.y/..z", "/api/...", "/api/caf\u{e9}", "/api/%2541%2541",
    ])
    func safePaths(_ path: String) { #expect(PathSanitizer.isSafe(path)) }

    /// Escapes an upstream could resolve differently than the gateway (SPEC §11.1): path
    /// parameters (`..;` is `..` to Tomcat, Jetty and Spring) and double encoding (`%252e` is `.`
    /// to an upstream that decodes twice), in every case and position.
    @Test(arguments: [
        "/api/x/..;/admin", "/api/x/;/admin", "/api/a;b", "/api/x;jsessionid=1", "/api/x/..;foo=bar/admin", "/api/;",
        "/api/x/%252e%252e/admin", "/api/x/%252E%252E/admin", "/api/x/%252e./admin", "/api/a%252fb", "/api/a%252Fb",
        "/api/a%255cb", "/api/a%255Cb", "/api/a%2500b", "/api/x/%25%32%65%25%32%65/admin", "/api/x/%25%32e",
        "/api/x/%252e", "/api/..%3B/secret", "/api/a/..%3b/b", "/api/a/.%3b/b", "/api/%253b", "/api/%25252e/b",
        "/api/%2525252e/b", "/api/a%c0%ae%c0%ae/b", "/api/%c0%af", "/api/%e0%80%ae", "/api/%ff",
    ])
    func escapesThroughParametersAndDoubleEncoding(_ path: String) { #expect(!PathSanitizer.isSafe(path)) }

    @Test(arguments: [
        "/api/../admin", "/api/./x", "/api/x/..", "/api/%2e%2e/admin", "/api/%2E%2E/admin", "/api/.%2e/x", "/api/a%2fb",
        "/api/a%2Fb", "/api/a%5cb", "/api/a\\b", "/api/a%00b", "/api/a\u{0}b", "/api/a b", "/api/a\tb", "api/x", "",
        "/api/%zz", "/api/%2", "/api/..;/x".replacingOccurrences(of: ";", with: ""),
    ])
    func hostilePaths(_ path: String) { #expect(!PathSanitizer.isSafe(path)) }

    @Test func requestHeaderPolicy() {
        let policy = HeaderPolicy(antiForgeryHeader: "X-CSRF", bffCookiePrefixes: ["__Host-bff-session"])
        let listed: Set<String> = ["x-secret-hop"]
        for name in [
            "connection", "keep-alive", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
            "cookie", "authorization", "x-csrf", "host", "x-secret-hop", "x-forwarded-proto", "x-forwarded-host",
            "dpop",
        ] {
            #expect(!policy.forwardsRequestHeader(name, connectionTokens: listed, trustedForwarding: false), "\(name)")
        }
        #expect(!policy.forwardsRequestHeader("x-forwarded-for", connectionTokens: [], trustedForwarding: false))
        #expect(policy.forwardsRequestHeader("x-forwarded-for", connectionTokens: [], trustedForwarding: true))
        // Routing hints from an untrusted client never reach the upstream (SPEC §11.1).
        for name in [
            "x-forwarded-prefix", "x-forwarded-port", "x-forwarded-server", "x-forwarded-ssl", "x-forwarded-anything",
            "x-real-ip", "forwarded", "x-original-url", "x-rewrite-url",
        ] {
            #expect(!policy.forwardsRequestHeader(name, connectionTokens: [], trustedForwarding: false), "\(name)")
        }
        // A trusted proxy's forwarding headers pass; rewrite hints and the gateway's own never do.
        for name in ["x-forwarded-prefix", "x-forwarded-port", "x-real-ip", "forwarded"] {
            #expect(policy.forwardsRequestHeader(name, connectionTokens: [], trustedForwarding: true), "\(name)")
        }
        // Other proxies' client-address headers, and underscore look-alikes that CGI, PHP and WSGI
        // read as the gateway's own headers.
        for name in [
            "true-client-ip", "client-ip", "x-client-ip", "x-cluster-client-ip", "x-forwarded_for", "x_real_ip",
        ] {
            #expect(!policy.forwardsRequestHeader(name, connectionTokens: [], trustedForwarding: false), "\(name)")
        }
        for name in ["x-original-url", "x-rewrite-url", "x-forwarded-proto", "x-forwarded-host", "x-forwarded_for"] {
            #expect(!policy.forwardsRequestHeader(name, connectionTokens: [], trustedForwarding: true), "\(name)")
        }
        for name in ["accept", "content-type", "x-request-id", "if-none-match", "user-agent"] {
            #expect(policy.forwardsRequestHeader(name, connectionTokens: listed, trustedForwarding: false), "\(name)")
        }
    }

    @Test(arguments: [["chunked"], ["Chunked"], [" chunked "], []])
    func forwardableTransferEncodings(_ values: [String]) { #expect(HeaderPolicy.acceptsTransferEncoding(values)) }

    @Test(arguments: [
        ["xchunked"], ["chunked, identity"], ["gzip, chunked"], ["identity"], ["chunked", "chunked"], [""],
        ["chunked;q=1"],
    ])
    func refusedTransferEncodings(_ values: [String]) { #expect(!HeaderPolicy.acceptsTransferEncoding(values)) }

    @Test func responseSetCookieFilter() {
        let policy = HeaderPolicy(
            antiForgeryHeader: "X-CSRF", bffCookiePrefixes: ["__Host-bff-session", "__Host-bff-login."])
        #expect(
            !policy.forwardsResponseHeader("set-cookie", value: "__Host-bff-session=x; Path=/", connectionTokens: []))
        #expect(!policy.forwardsResponseHeader("set-cookie", value: "__Host-bff-session.1=x", connectionTokens: []))
        #expect(!policy.forwardsResponseHeader("set-cookie", value: " __Host-bff-login.abc=x", connectionTokens: []))
        #expect(policy.forwardsResponseHeader("set-cookie", value: "app=1", connectionTokens: []))
        #expect(!policy.forwardsResponseHeader("keep-alive", value: "timeout=5", connectionTokens: []))
        #expect(!policy.forwardsResponseHeader("x-hop", value: "1", connectionTokens: ["x-hop"]))
        #expect(HeaderPolicy.connectionTokens(["close, X-Hop ", "keep-alive"]) == ["close", "x-hop", "keep-alive"])
    }

    @Test func cidrMatching() throws {
        let v4 = try #require(IPAddressRange("10.0.0.0/8"))
        #expect(v4.contains("10.1.2.3"))
        #expect(!v4.contains("11.0.0.1"))
        #expect(!v4.contains("::1"))
        let single = try #require(IPAddressRange("127.0.0.1"))
        #expect(single.contains("127.0.0.1"))
        #expect(!single.contains("127.0.0.2"))
        let v6 = try #require(IPAddressRange("fd00::/8"))
        #expect(v6.contains("fd12:3456::1"))
        #expect(!v6.contains("fe80::1"))
        #expect(try #require(IPAddressRange("::1/128")).contains("[::1]"))
        for bad in ["", "10.0.0.0/33", "300.1.1.1", "1.2.3", "::1/129", "a::b::c", "10.0.0.0/x"] {
            #expect(IPAddressRange(bad) == nil, "\(bad)")
        }
    }
}

actor Counter {
    var value = 0
    func increment() { value += 1 }
}
