import BFFCore
import BFFForwarder
import BFFTesting
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOSSL
import Testing

@testable import BFFGateway

/// `https://` upstreams: verified against the system's trust store by default, or against a
/// route's own CA file (a private PKI). Certificates are made with the openssl CLI per run.
@Suite("TLS upstreams")
struct TLSUpstreamTests {
    /// A throw-away CA and a server certificate for localhost / 127.0.0.1, signed by it.
    struct PKI {
        let directory: String
        var caFile: String { directory + "/ca.pem" }
        var certificate: String { directory + "/server.pem" }
        var key: String { directory + "/server.key" }

        static func make() throws -> PKI {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "bff-pki-\(UUID().uuidString)"
            )
            .path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(
                toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
            for arguments in [
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days",
                    "2",
                    "-subj", "/CN=swift-bff test CA",
                ],
                [
                    "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
                    "/CN=localhost",
                ],
                [
                    "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                    "server.pem", "-days", "2", "-extfile", "san.ext",
                ],
            ] {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
                process.arguments = arguments
                process.currentDirectoryURL = URL(fileURLWithPath: directory)
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else {
                    throw PKIError(step: arguments[0])
                }
            }
            return PKI(directory: directory)
        }
    }

    /// An HTTPS upstream answering /echo with whether it received a bearer token.
    static func httpsUpstream(pki: PKI, port: Int) throws -> some ApplicationProtocol {
        let router = Router()
        router.get("echo/**") { request, _ in
            let bearer = request.headers[.authorization]?.hasPrefix("Bearer ") ?? false
            return "{\"tls\":true,\"bearer\":\(bearer)}"
        }
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(pki.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.key, format: .pem)))
        return Application(
            router: router, server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: TestEnvironment.quietLogger)
    }

    @Test func privateCAIsTrustedOnlyWhereConfigured() async throws {
        let pki = try PKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let port = try await TestServers.freePort()
        try await TestEnvironment.run(
            extraServices: [try Self.httpsUpstream(pki: pki, port: port)], extraPorts: [port],
            configure: { settings in
                settings.apis += [
                    APIRouteConfiguration(
                        path: "/api/private", upstream: "https://localhost:\(port)/echo", token: .user,
                        caFile: pki.caFile),
                    // The same server without the CA file: the system trust store does not know it.
                    APIRouteConfiguration(
                        path: "/api/system", upstream: "https://localhost:\(port)/echo", token: .user),
                ]
            }
        ) { env, browser in
            try await env.login(browser)
            let trusted = try await browser.get(env.origin + "/api/private/x", headers: env.csrf)
            #expect(trusted.status == 200)
            #expect(trusted.body == #"{"tls":true,"bearer":true}"#)
            let started = ContinuousClock.now
            let untrusted = try await browser.get(env.origin + "/api/system/x", headers: env.csrf)
            #expect(
                ContinuousClock.now - started < .seconds(10), "answered within the connect timeout, not the route's")
            #expect(untrusted.status == 502, "an unverified certificate is never accepted")
            #expect(untrusted.body.contains("urn:bff:problem:upstream-unavailable"))
        }
    }

    /// An https call the event-loop handler suspended for (a store read) and then handed to the
    /// router: the store span's parent is exported too (no orphan spans in the trace).
    @Test func aHandedOverCallLeavesNoOrphanSpans() async throws {
        let pki = try PKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let port = try await TestServers.freePort()
        let receiver = TracingTests.Receiver(port: try await TestServers.freePort())
        // A store without immediate lookups: every call suspends for its find.
        let store = FailingStore(base: MemorySessionStore())
        try await TestEnvironment.run(
            extraServices: [try Self.httpsUpstream(pki: pki, port: port), receiver.application()],
            extraPorts: [port, receiver.port], store: store, otlpEndpoint: "http://127.0.0.1:\(receiver.port)",
            configure: { settings in
                settings.session.store = .memory
                settings.apis += [
                    APIRouteConfiguration(
                        path: "/api/private", upstream: "https://localhost:\(port)/echo", token: .user,
                        caFile: pki.caFile)
                ]
            }
        ) { env, browser in
            try await env.login(browser)
            #expect(try await browser.get(env.origin + "/api/private/x", headers: env.csrf).status == 200)
            // Spans arrive in batches, possibly several: wait until the handed-over root, its store
            // span and every parent are in (or fail with the last set after the timeout).
            let spans = try await eventually(
                attempts: 400,
                until: { spans in
                    let exported = Set(spans.map(\.spanID))
                    guard
                        let root = spans.first(where: {
                            $0.name == "HTTP GET /api/private" && $0.attributes["bff.handoff"] == "router"
                        })
                    else { return false }
                    return spans.contains { $0.name == "session_store find" && $0.parentSpanID == root.spanID }
                        && spans.allSatisfy { $0.parentSpanID.isEmpty || exported.contains($0.parentSpanID) }
                }
            ) { receiver.spans }
            let handedOver = try #require(spans.first { $0.attributes["bff.handoff"] == "router" })
            #expect(spans.contains { $0.name == "session_store find" && $0.parentSpanID == handedOver.spanID })
            let exported = Set(spans.map(\.spanID))
            for span in spans where !span.parentSpanID.isEmpty {
                #expect(exported.contains(span.parentSpanID), "\(span.name) has a parent that was never exported")
            }
        }
    }

    @Test func caFileProblemsAreReportedAtLoad() throws {
        let pki = try PKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        func problems(_ route: String) -> [ConfigurationProblem] {
            let yaml = """
                oidc: {issuer: "https://idp.example.com", clientId: bff, clientSecret: s}
                session: {store: memory}
                keys: [{id: k1, secret: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]
                apis:
                  - \(route)
                """
            if case .failure(let list) = GatewayConfigurationLoader.load(yaml: yaml, environment: [:]) {
                return list.problems
            }
            return []
        }
        #expect(problems("{path: /api/a, upstream: \"https://api.internal\", caFile: \"\(pki.caFile)\"}").isEmpty)
        #expect(
            problems("{path: /api/a, upstream: \"http://127.0.0.1:1\", caFile: \"\(pki.caFile)\"}").map(\.path)
                == ["apis[0].caFile"])
        #expect(
            problems("{path: /api/a, upstream: \"https://api.internal\", caFile: \"\(pki.directory)/missing.pem\"}")
                .map(\.path) == ["apis[0].caFile"])
        #expect(
            problems("{path: /api/a, upstream: \"https://api.internal\", caFile: \"\(pki.directory)/san.ext\"}")
                .map(\.path) == ["apis[0].caFile"])
    }
}

/// openssl failed while making the test PKI.
struct PKIError: Error {
    let step: String
}
