import BFFCore
import HTTPTypes
import Hummingbird
import NIOCore

/// Header names HTTPTypes does not predefine. The failable initialiser cannot fail for these literal
/// tokens; they stay optional so no code path can trap.
enum ExtraHeaderNames {
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")
}

extension HTTPFields {
    /// Sets a field whose name may be unavailable (see ``ExtraHeaderNames``).
    mutating func set(_ name: HTTPField.Name?, _ value: String) {
        if let name { self[name] = value }
    }
}

/// A ``Problem`` thrown from a handler; Hummingbird turns it into the problem response.
public struct ProblemError: HTTPResponseError {
    /// The problem.
    public let problem: Problem
    /// Wraps a problem.
    public init(_ problem: Problem) { self.problem = problem }
    /// The HTTP status.
    public var status: HTTPResponse.Status { .init(code: problem.status) }
    /// An `application/problem+json` response with `Cache-Control: no-store`.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        BFFResponses.problem(problem)
    }
}

/// Response builders shared by the routes and middleware.
public enum BFFResponses {
    /// A problem response, with optional cookies.
    public static func problem(_ problem: Problem, cookies: [SetCookie] = []) -> Response {
        // The same headers the gateway's event-loop handler writes (one problem writer).
        var headers = HTTPFields()
        for (name, value) in problem.responseHeaders(cookies: cookies) {
            if let name = HTTPField.Name(name) { headers.append(HTTPField(name: name, value: value)) }
        }
        return Response(
            status: .init(code: problem.status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: problem.json())))
    }

    /// A 302 redirect with `Cache-Control: no-store`.
    public static func redirect(to location: String, cookies: [SetCookie] = []) -> Response {
        var headers: HTTPFields = [.location: location, .cacheControl: "no-store"]
        headers.set(ExtraHeaderNames.referrerPolicy, "no-referrer")
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        return Response(status: .found, headers: headers)
    }

    /// A JSON response with `Cache-Control: no-store`.
    public static func json(_ body: String, status: HTTPResponse.Status = .ok, cookies: [SetCookie] = []) -> Response {
        var headers: HTTPFields = [
            .contentType: "application/json", .cacheControl: "no-store", .xContentTypeOptions: "nosniff",
        ]
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// A small HTML page with a strict CSP (`script-src` only for the given nonce, if any).
    public static func html(
        _ body: String, status: HTTPResponse.Status, scriptNonce: String? = nil, cookies: [SetCookie] = []
    ) -> Response {
        let scripts = scriptNonce.map { "'nonce-\($0)'" } ?? "'none'"
        var headers: HTTPFields = [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store", .xContentTypeOptions: "nosniff",
            .contentSecurityPolicy:
                "default-src 'none'; script-src \(scripts); style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
        ]
        headers.set(ExtraHeaderNames.referrerPolicy, "no-referrer")
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// The login error page: a correlation id and nothing secret.
    public static func loginError(status: HTTPResponse.Status, correlationID: String, cookies: [SetCookie]) -> Response
    {
        html(
            """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title></head>
            <body><h1>Sign-in failed</h1><p>We could not complete your sign-in. Please <a href="/">return to the application</a> and try again.</p>
            <p>Reference: <code>\(correlationID)</code></p></body></html>
            """, status: status, cookies: cookies)
    }
}

extension Request {
    /// All values of the `Cookie` header(s), parsed lazily on bytes.
    var cookieHeader: CookieHeader { CookieHeader(fields: headers[values: .cookie]) }

    /// The raw query string (without `?`).
    var rawQuery: String? { uri.query }
}
