import BFFCore
import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension BFF {
    /// Adds the management endpoints (SPEC §3) to `router`: login, callback, user, logout,
    /// post-logout callback and, in development, diagnostics.
    public func addManagementRoutes<Context: BFFRequestContext>(to router: Router<Context>) {
        let prefix = RouterPath(configuration.managementPrefix)
        let group = router.group(prefix).add(middleware: BFFSessionMiddleware<Context>(bff: self))
        group.get("login") { request, context in try await self.login(request, context: context) }
        // Duende v3's silent-login endpoints, for SPAs written against them (the iframe mode).
        group.get("silent-login") { request, context in
            try await self.login(request, context: context, iframeOnly: true)
        }
        group.get("silent-login-callback") { request, context in self.silentLoginCallback(request, context: context) }
        group.get("user") { request, context in await self.user(request, context: context) }
        group.get("logout") { request, context in await self.logout(request, context: context) }
        group.post("logout") { request, context in
            guard self.passesAntiForgery(request) else { return BFFResponses.problem(.antiforgery) }
            return await self.logout(request, context: context)
        }
        group.get("diagnostics") { request, context in self.diagnostics(request, context: context) }
        group.post("backchannel") { request, context in await self.backchannel(request, logger: context.logger) }
        if configuration.logout.frontChannel {
            group.get("frontchannel") { request, context in await self.frontchannel(request, logger: context.logger) }
        }
        let callbacks = router.group().add(middleware: BFFSessionMiddleware<Context>(bff: self))
        callbacks.get(RouterPath(configuration.oidc.callbackPath)) { request, context in
            await self.callback(request, context: context)
        }
        callbacks.get(RouterPath(configuration.oidc.postLogoutCallbackPath)) { request, context in
            self.postLogoutCallback(request, context: context)
        }
    }

    /// `GET /bff/user`: the claims array, or 401 / `null` when anonymous.
    func user<Context: BFFRequestContext>(_ request: Request, context: Context) async -> Response {
        guard passesAntiForgery(request) else { return BFFResponses.problem(.antiforgery) }
        if context.bff.storeUnavailable { return BFFResponses.problem(.storeUnavailable) }
        guard var loaded = context.bff.session else {
            if configuration.user.anonymousAsNull { return BFFResponses.json("null") }
            return BFFResponses.problem(.unauthenticated)
        }
        let query = FormEncoding.firstValues(request.rawQuery) ?? [:]
        var cookies: [SetCookie] = []
        if query["slide"] != "false" {
            cookies = await sessions.slide(&loaded, cookies: request.cookieHeader)
        }
        let expiresIn = max(
            0,
            loaded.session.expiresAt(
                idleTimeout: configuration.session.idleTimeout.components.seconds,
                absoluteTimeout: configuration.session.absoluteTimeout.components.seconds) - time.now)
        return BFFResponses.json(userClaimsJSON(loaded.session, expiresIn: expiresIn), cookies: cookies)
    }

    /// The Duende-compatible claims array for `session`.
    public func userClaimsJSON(_ session: Session, expiresIn: Int64) -> String {
        let claims = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(session.claimsJSON))) ?? [:]
        var entries: [String] = []
        func entry(_ type: String, _ value: String) {
            entries.append("{\"type\":\(JSONText.quote(type)),\"value\":\(value)}")
        }
        for name in claims.keys.sorted() where !excludedClaims.contains(name) {
            guard let value = claims[name] else { continue }
            let values = value.arrayValue ?? [value]
            for element in values {
                if let rendered = BFF.renderClaimValue(element) { entry(name, rendered) }
            }
        }
        entry(
            "bff:logout_url",
            JSONText.quote("\(configuration.managementPrefix)/logout?sid=\(FormEncoding.escape(session.logoutID))"))
        entry("bff:session_expires_in", "\(expiresIn)")
        if let state = session.sessionState { entry("bff:session_state", JSONText.quote(state)) }
        return "[" + entries.joined(separator: ",") + "]"
    }

    static func renderClaimValue(_ value: JSONValue) -> String? {
        switch value {
        case .null: return nil
        case .bool(let flag): return flag ? "true" : "false"
        case .int(let number): return "\(number)"
        case .double(let number): return number.isFinite ? "\(number)" : nil
        case .string(let text): return JSONText.quote(text)
        case .array, .object:
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            guard let data = try? encoder.encode(value) else { return nil }
            return JSONText.quote(String(decoding: data, as: UTF8.self))
        }
    }

    /// `GET /bff/diagnostics` (development only): session metadata, tokens only if configured.
    func diagnostics<Context: BFFRequestContext>(_ request: Request, context: Context) -> Response {
        guard configuration.server.isDevelopment else { return BFFResponses.problem(.notFound) }
        guard passesAntiForgery(request) else { return BFFResponses.problem(.antiforgery) }
        guard let session = context.bff.session?.session else { return BFFResponses.problem(.unauthenticated) }
        func token(_ value: String?) -> String {
            guard let value else { return "null" }
            return configuration.diagnostics.showTokens
                ? JSONText.quote(value) : JSONText.quote("present (\(value.utf8.count) bytes)")
        }
        let body = """
            {"issuer":\(JSONText.quote(session.issuer)),"sub":\(JSONText.quote(session.subject)),\
            "sid":\(session.idpSessionID.map(JSONText.quote) ?? "null"),"createdAt":\(session.createdAt),\
            "renewedAt":\(session.renewedAt),"accessTokenExpiresAt":\(session.tokens.accessTokenExpiresAt.map { "\($0)" } ?? "null"),\
            "accessToken":\(token(session.tokens.accessToken)),"refreshToken":\(token(session.tokens.refreshToken)),\
            "idToken":\(token(session.tokens.idToken)),"store":\(JSONText.quote(configuration.session.store.description))}
            """
        return BFFResponses.json(body)
    }
}

extension BFF {
    /// Whether `path` (without query) is the BFF's own: under the management prefix or one of the
    /// OIDC callbacks. Such paths are never handed to a dev server, over HTTP or WebSocket.
    public func isOwnPath(_ path: some StringProtocol) -> Bool {
        for prefix in [
            configuration.managementPrefix, configuration.oidc.callbackPath, configuration.oidc.postLogoutCallbackPath,
        ] where path == prefix || path.hasPrefix(prefix + "/") {
            return true
        }
        return false
    }
}
