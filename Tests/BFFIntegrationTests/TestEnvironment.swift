import AsyncHTTPClient
import BFFCore
import BFFDevIdentityProvider
import BFFForwarder
import BFFHummingbird
import BFFOIDC
import BFFTesting
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import BFFGateway

/// A running dev IdP + gateway pair on loopback, built through the production builder.
struct TestEnvironment: Sendable {
    let origin: String
    let issuer: String
    let idp: DevIdentityProvider
    let gateway: Gateway
    let adminPort: Int
    let apiPort: Int
    /// The gateway's link to the IdP; tests cut it to simulate an outage.
    let idpLink: SwitchableOIDCHTTPClient
    /// The gateway's upstream forwarder.
    let forwarder: NIOUpstream
    /// A second gateway instance (same configuration, keys and public origin, its own listener,
    /// forwarder and store connection), when asked for: two instances behind one load balancer.
    var peer: Gateway? = nil
    /// Where the second instance listens.
    var peerOrigin: String? = nil
    /// The gateway's clock, when a test gave it one.
    var gatewayTime: (any TimeSource)? = nil

    static var quietLogger: Logger {
        var logger = Logger(label: "bff.test")
        // BFF_TEST_LOG_LEVEL=warning shows why a gateway refused something in a failing run.
        logger.logLevel =
            ProcessInfo.processInfo.environment["BFF_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }

    /// Runs `body` with both servers up. `configure` may change the gateway configuration.
    static func run(
        accessTokenLifetime: Int64 = 300, issueSessionID: Bool = true, idpRunning: Bool = true,
        upstream: (any UpstreamTransport)? = nil, extraServices: [any Service] = [], extraPorts: [Int] = [],
        gatewayTime: (any TimeSource)? = nil, idpTime: (any TimeSource)? = nil, keyRing: KeyRing? = nil,
        store: (any SessionStore)? = nil,
        revocationFeed: (any SharedRevocationFeed)? = nil,
        peer: (store: (any SessionStore)?, revocationFeed: (any SharedRevocationFeed)?)? = nil,
        apiFastPath: Bool = true, forwarderConfiguration: NIOUpstream.Configuration = .init(),
        apiCalls: APICallLog? = nil, gatewayLogger: Logger? = nil, accessLog: Bool = false,
        otlpEndpoint: String? = nil, configurationSource: ConfigurationSource? = nil,
        configure: (inout BFFConfiguration) -> Void = { _ in },
        configureIdP: (inout DevIdentityProviderConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestEnvironment, TestBrowser) async throws -> Void
    ) async throws {
        let gatewayPort = try await TestServers.freePort()
        let idpPort = try await TestServers.freePort()
        let adminPort = try await TestServers.freePort()
        let apiPort = try await TestServers.freePort()
        var setup = try DemoSetup.make(
            port: gatewayPort, idpPort: idpPort, apiPort: apiPort, adminPort: adminPort,
            accessTokenLifetime: accessTokenLifetime)
        setup.idp.issueSessionID = issueSessionID
        configureIdP(&setup.idp)
        configure(&setup.gateway.bff)
        setup.gateway.logging.access = accessLog
        setup.gateway.telemetry.endpoint = otlpEndpoint
        setup.gateway.source = configurationSource
        setup.gateway.telemetry.exportInterval = .milliseconds(100)
        let client = AsyncHTTPClientTransport.makeClient()
        let tls = try TLSUpstreams(caFiles: setup.gateway.bff.apis.compactMap(\.caFile))
        let idpLink = SwitchableOIDCHTTPClient(base: AsyncHTTPClientTransport(client: client))
        let forwarder = NIOUpstream(configuration: forwarderConfiguration, tlsFallback: tls)
        let gateway: Gateway
        do {
            gateway = try Gateway.build(
                configuration: setup.gateway, keyRing: keyRing ?? setup.keyRing, http: idpLink,
                upstream: upstream ?? forwarder, store: store, revocationFeed: revocationFeed,
                time: gatewayTime ?? SystemTimeSource(), logger: gatewayLogger ?? quietLogger, apiFastPath: apiFastPath,
                apiCallObserver: apiCalls?.observer, configureRouter: DemoAPI.add)
        } catch {
            try? await client.shutdown()  // a refused configuration must fail the test, not crash the run
            try? await tls.shutdown()
            throw error
        }
        // As `bff serve`: stored revocation records apply before the first request.
        try await gateway.bff.restoreRevocations()
        let idp = try DevIdentityProvider(configuration: setup.idp, time: idpTime ?? SystemTimeSource())
        var environment = TestEnvironment(
            origin: "http://localhost:\(gatewayPort)", issuer: setup.idp.issuer, idp: idp, gateway: gateway,
            adminPort: adminPort, apiPort: apiPort, idpLink: idpLink, forwarder: forwarder, gatewayTime: gatewayTime)
        var services: [any Service] = [
            gateway.service, SampleAPI.makeApplication(idp: idp, port: apiPort, logger: quietLogger), forwarder,
        ]
        services += gateway.maintenance
        var ports = [gatewayPort, apiPort]
        if let peer {
            let peerPort = try await TestServers.freePort()
            var peerConfiguration = setup.gateway
            peerConfiguration.bff.server.port = peerPort
            peerConfiguration.bff.server.publicOrigin = setup.gateway.bff.server.effectivePublicOrigin
            peerConfiguration.bff.admin.listen = nil
            let peerForwarder = NIOUpstream(tlsFallback: tls)
            let peerGateway = try Gateway.build(
                configuration: peerConfiguration, keyRing: keyRing ?? setup.keyRing, http: idpLink,
                upstream: upstream ?? peerForwarder, store: peer.store, revocationFeed: peer.revocationFeed,
                time: gatewayTime ?? SystemTimeSource(), logger: quietLogger, configureRouter: DemoAPI.add)
            environment.peer = peerGateway
            environment.peerOrigin = "http://localhost:\(peerPort)"
            services += [peerGateway.service, peerForwarder] + peerGateway.maintenance
            ports.append(peerPort)
        }
        services += extraServices
        ports += extraPorts
        if let admin = gateway.admin {
            services.append(admin)
            ports.append(adminPort)
        }
        if idpRunning {
            services.append(idp.makeApplication(host: "127.0.0.1", port: idpPort, logger: quietLogger))
            ports.append(idpPort)
        }
        let browser = TestBrowser()
        do {
            let running = environment
            try await TestServers.withRunning(services, ports: ports) { try await body(running, browser) }
        } catch {
            try? await browser.shutdown()
            try? await client.shutdown()
            try? await tls.shutdown()
            throw error
        }
        try await browser.shutdown()
        try await client.shutdown()
        try await tls.shutdown()
    }

    var csrf: [(String, String)] { [("X-CSRF", "1")] }

    /// Logs in through the dev IdP's HTML form; returns the callback's response.
    @discardableResult
    /// Logs `browser` in through the dev IdP's form and returns the callback's answer; unless
    /// `mayFail`, a callback that does not redirect fails the test with its body.
    func login(
        _ browser: TestBrowser, user: String = "alice", password: String? = nil, returnURL: String = "/",
        mayFail: Bool = false
    ) async throws -> TestBrowser.Page {
        // The dev IdP signs with the wall clock: a manual gateway clock created before a slow
        // start-up must not see the ID token as issued in the future (it is never moved back).
        (gatewayTime as? ManualTimeSource)?.advance(to: SystemTimeSource().now)
        let start = try await browser.get(origin + "/bff/login?returnUrl=" + FormEncoding.escape(returnURL))
        try #require(start.status == 302, "login answered \(start.status): \(start.body)")
        let form = try await browser.get(try #require(start.location))
        let page = form.status == 200 ? form : try await browser.follow(form)
        let requestID = try #require(Self.extract(#"name="request_id" value=""#, from: page.body))
        let submitted = try await browser.postForm(
            issuer + "/authorize", [("request_id", requestID), ("username", user), ("password", password ?? user)])
        try #require(submitted.status == 302, "login form answered \(submitted.status)")
        let callback = try await browser.get(try #require(submitted.location))
        if !mayFail { try #require(callback.status == 302, "callback answered \(callback.status): \(callback.body)") }
        return callback
    }

    func user(_ browser: TestBrowser) async throws -> TestBrowser.Page {
        try await browser.get(origin + "/bff/user", headers: csrf)
    }

    func logoutURL(_ browser: TestBrowser) async throws -> String {
        let page = try await user(browser)
        let path = try #require(Self.extract(#""bff:logout_url","value":""#, from: page.body))
        return origin + path
    }

    static func extract(_ prefix: String, from text: String) -> String? {
        guard let range = text.range(of: prefix) else { return nil }
        let rest = text[range.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }

    static func query(_ url: String) -> [String: String] {
        guard let mark = url.firstIndex(of: "?") else { return [:] }
        return FormEncoding.firstValues(String(url[url.index(after: mark)...])) ?? [:]
    }
}

/// Wraps the gateway's IdP client so a test can make the IdP unreachable and back.
final class SwitchableOIDCHTTPClient: OIDCHTTPClient {
    let base: any OIDCHTTPClient
    private let reachable = Mutex(true)
    /// Answers every refresh-token grant with this instead of asking the IdP (a WAF, a proxy, a
    /// rotated client secret).
    private let refreshAnswer = Mutex<OIDCHTTPResponse?>(nil)

    init(base: any OIDCHTTPClient) { self.base = base }

    func setReachable(_ value: Bool) { reachable.withLock { $0 = value } }

    func answerRefreshes(with response: OIDCHTTPResponse?) { refreshAnswer.withLock { $0 = response } }

    func send(_ request: OIDCHTTPRequest, timeout: Duration) async throws -> OIDCHTTPResponse {
        guard reachable.withLock({ $0 }) else { throw TestServerError(message: "IdP unreachable (test)") }
        if let answer = refreshAnswer.withLock({ $0 }), request.method == "POST",
            let body = request.body, String(decoding: body, as: UTF8.self).contains("grant_type=refresh_token")
        {
            return answer
        }
        return try await base.send(request, timeout: timeout)
    }
}

/// Polls `observe` until `done` accepts its value or `attempts` run out (for effects that happen in
/// the background); returns the last value seen, for the caller's expectation.
func eventually<Value: Sendable>(
    attempts: Int = 100, every interval: Duration = .milliseconds(20), until done: (Value) -> Bool,
    _ observe: () async throws -> Value
) async throws -> Value {
    var value = try await observe()
    for _ in 1..<attempts where !done(value) {
        try await Task.sleep(for: interval)
        value = try await observe()
    }
    return value
}

/// Records which pipeline served each API call (``APICallEvent``), so a test can tell how *its*
/// request was served.
final class APICallLog: Sendable {
    private let events = Mutex<[APICallEvent]>([])

    var observer: APICallObserver { { [self] event in events.withLock { $0.append(event) } } }

    /// The pipelines that forwarded calls whose target contains `marker` to their upstream.
    func pipelines(for marker: String) -> [APICallEvent.Pipeline] {
        events.withLock { $0.filter { $0.target.contains(marker) && $0.upstreamStatus != nil }.map(\.pipeline) }
    }

    /// Every event (forwarded or answered by the gateway) of calls whose target contains `marker`.
    func events(for marker: String) -> [APICallEvent] {
        events.withLock { $0.filter { $0.target.contains(marker) } }
    }

    /// The one pipeline that served the call marked `marker` (nil if none or several calls had it).
    func pipeline(for marker: String) -> APICallEvent.Pipeline? {
        let found = pipelines(for: marker)
        return found.count == 1 ? found[0] : nil
    }
}
