import HTTPTypes
import HummingbirdCore
import NIOCore

/// One request to an upstream API.
public struct UpstreamRequest: Sendable {
    /// Method.
    public var method: HTTPRequest.Method
    /// Absolute upstream URL (scheme, host, port, path and query).
    public var url: String
    /// Headers to send (already filtered by the header policy).
    public var headers: HTTPFields
    /// Declared request body length, if known.
    public var contentLength: Int?
    /// Until the response head arrives, and then the longest pause between two reads of the
    /// response body (while the client is taking it).
    public var timeout: Duration
    /// The event loop of the inbound request; the upstream connection is taken from its pool.
    public var eventLoop: (any EventLoop)?
    /// For `https://`: a PEM file of CAs to trust instead of the system's (a route's `caFile`).
    public var caFile: String?

    /// Creates a request.
    public init(
        method: HTTPRequest.Method, url: String, headers: HTTPFields, contentLength: Int?, timeout: Duration,
        eventLoop: (any EventLoop)? = nil, caFile: String? = nil
    ) {
        self.caFile = caFile
        self.method = method
        self.url = url
        self.headers = headers
        self.contentLength = contentLength
        self.timeout = timeout
        self.eventLoop = eventLoop
    }
}

/// The upstream's answer: head plus a streamed body.
public struct UpstreamResponse: Sendable {
    /// Status and headers (unfiltered).
    public var head: HTTPResponse
    /// The body, streamed to the client as it arrives.
    public var body: ResponseBody

    /// Creates a response.
    public init(head: HTTPResponse, body: ResponseBody) {
        self.head = head
        self.body = body
    }
}

/// Why forwarding failed; maps to 502 or 504 problems.
public struct UpstreamError: Error, CustomStringConvertible, Equatable {
    enum Base: Equatable { case unavailable, timeout, busy, badRequestBody }
    let base: Base
    /// The upstream could not be reached or broke the connection (502).
    public static let unavailable = UpstreamError(base: .unavailable)
    /// The upstream did not answer in time, or stopped sending mid-body (504).
    public static let timeout = UpstreamError(base: .timeout)
    /// Every pooled connection stayed in use for the pool's wait deadline (503).
    public static let busy = UpstreamError(base: .busy)
    /// The client's request body broke off or was malformed (400): the client's fault.
    public static let badRequestBody = UpstreamError(base: .badRequestBody)
    /// Whether the client's body, not the upstream, failed.
    public var isClientFault: Bool { base == .badRequestBody }
    /// Whether this is a timeout.
    public var isTimeout: Bool { base == .timeout }
    /// Whether the pool had no connection to give within its wait deadline.
    public var isBusy: Bool { base == .busy }
    /// A description without request details.
    public var description: String {
        switch base {
        case .unavailable: "upstream unavailable"
        case .timeout: "upstream timed out"
        case .busy: "upstream connection pool busy"
        case .badRequestBody: "request body incomplete or malformed"
        }
    }
}

/// Sends requests to upstream APIs, streaming bodies both ways.
public protocol UpstreamTransport: Sendable {
    /// Sends `request` with `body` (nil for none) and returns the response head and streamed body.
    /// Throws ``UpstreamError`` for connection failures and timeouts.
    func send(_ request: UpstreamRequest, body: RequestBody?) async throws -> UpstreamResponse
}
