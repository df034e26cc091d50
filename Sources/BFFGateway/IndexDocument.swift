import BFFCore
import BFFHummingbird
import BFFOIDC
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// `static.indexUrl`: the SPA's `index.html`, fetched from a CDN or origin server and kept
/// (SPEC §11.3). Fresh for the origin's `Cache-Control: max-age` (5 min without one; `no-cache`
/// or `no-store`: revalidated on every navigation); then revalidated with `If-None-Match`. When the
/// origin fails, the last good copy is served (and the failure logged); with none, 502. One
/// fetch at a time, however many navigations wait for it.
final class IndexDocument: Sendable {
    struct Copy: Sendable {
        let body: ByteBuffer
        let contentType: String
        let etag: String?
        /// When it must be revalidated (unix seconds).
        var freshUntil: UnixTime
    }

    let url: String
    let http: any OIDCHTTPClient
    let time: any TimeSource
    let logger: Logger
    /// Without `max-age` from the origin.
    static let defaultMaxAge: Int64 = 300
    private let copy = Mutex<Copy?>(nil)
    private let fetching = KeyedAsyncLock<Int>()
    /// Fetches sent to the origin (tests).
    let fetches = Mutex(0)

    init(url: String, http: any OIDCHTTPClient, time: any TimeSource, logger: Logger) {
        self.url = url
        self.http = http
        self.time = time
        self.logger = logger
    }

    /// The document to serve: the fresh copy, else a revalidated or refetched one, else the last
    /// good one; nil when none was ever fetched.
    func current() async -> Copy? {
        if let fresh = copy.withLock({ $0 }), fresh.freshUntil > time.now { return fresh }
        return try? await fetching.withLock(0) {
            // Whoever waited behind a fetch finds its result here.
            if let fresh = copy.withLock({ $0 }), fresh.freshUntil > time.now { return fresh }
            return await refresh()
        }
    }

    private func refresh() async -> Copy? {
        let stale = copy.withLock { $0 }
        var headers = [("Accept", "text/html")]
        if let etag = stale?.etag { headers.append(("If-None-Match", etag)) }
        fetches.withLock { $0 += 1 }
        let response: OIDCHTTPResponse
        do {
            response = try await http.send(OIDCHTTPRequest(url: url, headers: headers), timeout: .seconds(10))
        } catch {
            logger.warning(
                "index.html could not be fetched: serving the last copy", metadata: ["bff.error": "\(error)"])
            return stale
        }
        func header(_ name: String) -> String? { response.headers.first { $0.0 == name }?.1 }
        let freshUntil = time.now + Self.maxAge(header("cache-control"))
        switch response.status {
        case 200:
            let fetched = Copy(
                body: ByteBuffer(bytes: response.body),
                contentType: header("content-type") ?? "text/html; charset=utf-8", etag: header("etag"),
                freshUntil: freshUntil)
            copy.withLock { $0 = fetched }
            return fetched
        case 304 where stale != nil:
            return copy.withLock { copy in
                copy?.freshUntil = freshUntil
                return copy
            }
        default:
            logger.warning(
                "index.html origin answered an unexpected status: serving the last copy",
                metadata: ["bff.status": "\(response.status)"])
            return stale
        }
    }

    /// Seconds a response stays fresh: its `max-age` (capped at a day), none for `no-cache` or
    /// `no-store`, ``defaultMaxAge`` otherwise.
    static func maxAge(_ cacheControl: String?) -> Int64 {
        guard let cacheControl else { return defaultMaxAge }
        var result = defaultMaxAge
        for directive in cacheControl.lowercased().split(separator: ",") {
            let part = directive.trimmingCharacters(in: .whitespaces)
            if part == "no-cache" || part == "no-store" { return 0 }
            if part.hasPrefix("max-age="), let seconds = Int64(part.dropFirst(8)), seconds >= 0 {
                result = min(seconds, 86_400)
            }
        }
        return result
    }
}

/// Serves ``IndexDocument`` for SPA navigations (GET or HEAD accepting `text/html`, not the BFF's
/// own paths nor an API route); everything else goes on (to `root`'s files, or to the origin proxy).
struct IndexDocumentMiddleware<Context: RequestContext>: RouterMiddleware {
    let document: IndexDocument
    let bff: BFF

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let path = request.uri.path
        guard request.method == .get || request.method == .head,
            request.headers[.accept]?.contains("text/html") == true,
            !bff.isOwnPath(path), !bff.planner.isAPIPath(path)
        else { return try await next(request, context) }
        guard let copy = await document.current() else { return BFFResponses.problem(.upstreamUnavailable) }
        var headers: HTTPFields = [.contentType: copy.contentType, .cacheControl: "no-cache"]
        if let etag = copy.etag {
            headers[.eTag] = etag
            if request.headers[values: .ifNoneMatch].contains(where: { $0.contains(etag) }) {
                return Response(status: .notModified, headers: headers)
            }
        }
        headers[.contentLength] = String(copy.body.readableBytes)
        return Response(
            status: .ok, headers: headers, body: request.method == .head ? .init() : .init(byteBuffer: copy.body))
    }
}
