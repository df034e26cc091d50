import AsyncHTTPClient
import HummingbirdCore
import NIOCore
import NIOSSL

/// `https://` upstreams: certificates are always verified (chain and host name), against the
/// system's trust store or — for routes that name one — a CA file of their own (a private PKI).
/// One AsyncHTTPClient per trust configuration; ``shutdown()`` closes them. A certificate that
/// does not verify answers 502 once the connect timeout (5 s) has passed: AsyncHTTPClient keeps
/// trying to establish a connection until then.
public final class TLSUpstreams: UpstreamTransport {
    let system: AsyncHTTPClientUpstream
    let byCAFile: [String: AsyncHTTPClientUpstream]
    let clients: [HTTPClient]

    /// Loads every CA file once. Throws ``TLSUpstreamsError`` naming a file that cannot be read or
    /// holds no PEM certificate.
    public init(caFiles: [String], poolSize: Int = 256) throws {
        var byCAFile: [String: AsyncHTTPClientUpstream] = [:]
        var clients: [HTTPClient] = []
        do {
            for file in Set(caFiles).sorted() {
                let certificates = try Self.certificates(in: file)
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.trustRoots = .certificates(certificates)
                tls.certificateVerification = .fullVerification
                let client = AsyncHTTPClientUpstream.makeClient(poolSize: poolSize, tls: tls)
                clients.append(client)
                byCAFile[file] = AsyncHTTPClientUpstream(client: client)
            }
        } catch {
            for client in clients { try? client.syncShutdown() }
            throw error
        }
        let systemClient = AsyncHTTPClientUpstream.makeClient(poolSize: poolSize)
        clients.append(systemClient)
        self.system = AsyncHTTPClientUpstream(client: systemClient)
        self.byCAFile = byCAFile
        self.clients = clients
    }

    /// The certificates of a PEM file, or a clear error.
    public static func certificates(in file: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(file)
        } catch {
            throw TLSUpstreamsError(message: "\(file) cannot be read as PEM certificates")
        }
        guard !certificates.isEmpty else { throw TLSUpstreamsError(message: "\(file) holds no certificate") }
        return certificates
    }

    public func send(_ request: UpstreamRequest, body: RequestBody?) async throws -> UpstreamResponse {
        guard let file = request.caFile else { return try await system.send(request, body: body) }
        // Routes are validated at startup; an unknown file here is a programming error, and the
        // safe answer is to refuse rather than fall back to a wider trust store.
        guard let upstream = byCAFile[file] else { throw UpstreamError.unavailable }
        return try await upstream.send(request, body: body)
    }

    /// Closes every client.
    public func shutdown() async throws {
        for client in clients { try await client.shutdown() }
    }
}

/// A CA file that cannot be used.
public struct TLSUpstreamsError: Error, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    /// The message.
    public var description: String { message }
}
