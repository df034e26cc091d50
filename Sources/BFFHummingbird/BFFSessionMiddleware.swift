import BFFCore
import HTTPTypes
import Hummingbird

/// Loads the session named by the request's cookie into `context.bff.session`.
///
/// Anything wrong with the cookie (malformed, tampered, unknown key, expired, revoked) simply
/// means "anonymous": this middleware never fails a request.
public struct BFFSessionMiddleware<Context: BFFRequestContext>: RouterMiddleware {
    let bff: BFF

    /// Creates the middleware.
    public init(bff: BFF) { self.bff = bff }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var context = context
        await bff.loadSession(for: request, into: &context)
        return try await next(request, context)
    }
}

/// Requires the anti-forgery header (and refuses cross-site requests) — SPEC §5.
public struct AntiForgeryMiddleware<Context: BFFRequestContext>: RouterMiddleware {
    let bff: BFF

    /// Creates the middleware.
    public init(bff: BFF) { self.bff = bff }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard bff.passesAntiForgery(request) else { return BFFResponses.problem(.antiforgery) }
        return try await next(request, context)
    }
}

/// Makes a route group a BFF API: anti-forgery first, then authentication. Failures are 401
/// problems (never redirects), so SPAs can react to them.
///
/// ```swift
/// router.group("api")
///     .add(middleware: BFFAPIMiddleware(bff: bff))
///     .get("weatherforecast") { request, context in ... }
/// ```
public struct BFFAPIMiddleware<Context: BFFRequestContext>: RouterMiddleware {
    let bff: BFF
    let requireAuthentication: Bool

    /// Creates the middleware; `requireAuthentication: false` allows anonymous callers (still
    /// anti-forgery protected).
    public init(bff: BFF, requireAuthentication: Bool = true) {
        self.bff = bff
        self.requireAuthentication = requireAuthentication
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard bff.passesAntiForgery(request) else { return BFFResponses.problem(.antiforgery) }
        var context = context
        await bff.loadSession(for: request, into: &context)
        if context.bff.storeUnavailable { return BFFResponses.problem(.storeUnavailable) }
        if requireAuthentication && context.bff.session == nil { return BFFResponses.problem(.unauthenticated) }
        return try await next(request, context)
    }
}

extension BFF {
    /// Loads the request's session into `context` once per request (later calls do nothing).
    public func loadSession<Context: BFFRequestContext>(for request: Request, into context: inout Context) async {
        guard !context.bff.sessionLoaded else { return }
        context.bff.sessionLoaded = true
        let cookies = request.headers[values: .cookie]
        guard !cookies.isEmpty else { return }
        do {
            context.bff.session = try await sessions.load(cookies: CookieHeader(fields: cookies))
        } catch {
            context.bff.storeUnavailable = true
            context.logger.warning("session store unavailable", metadata: ["bff.error": "\(error)"])
        }
    }

    /// Whether the request satisfies the anti-forgery rule.
    public func passesAntiForgery(_ request: Request) -> Bool {
        guard let name = antiForgeryHeader else { return false }
        return antiForgery.allows(
            header: request.headers[values: name],
            secFetchSite: ExtraHeaderNames.secFetchSite.map { request.headers[values: $0] } ?? [],
            origin: request.headers[values: .origin])
    }

    /// Whether the request is visibly cross-site.
    func isCrossSite(_ request: Request) -> Bool {
        antiForgery.isCrossSite(
            secFetchSite: ExtraHeaderNames.secFetchSite.map { request.headers[values: $0] } ?? [],
            origin: request.headers[values: .origin])
    }
}
