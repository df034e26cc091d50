import BFFCore
import BFFOIDC
import HTTPTypes
import Hummingbird
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension BFF {
    /// `GET /bff/login?returnUrl=&prompt=`: starts the authorization code flow. `iframeOnly`:
    /// Duende v3's `/bff/silent-login` (prompt=none, answered by the iframe page).
    func login<Context: BFFRequestContext>(_ request: Request, context: Context, iframeOnly: Bool = false)
        async throws -> Response
    {
        guard let query = FormEncoding.firstValues(request.rawQuery) else { return BFFResponses.problem(.badRequest) }
        let returnURL = iframeOnly ? "/" : query["returnUrl"] ?? configuration.homePath
        guard ReturnURLValidator.isValid(returnURL) else { return BFFResponses.problem(.invalidReturnURL) }
        let prompt = iframeOnly ? "none" : query["prompt"]
        if let prompt, !PromptValidator.known.contains(prompt) { return BFFResponses.problem(.invalidPrompt) }
        // Step-up: `acrValues` (space-separated) and `maxAge` (seconds), as a step-up-required
        // problem names them.
        var acrValues: [String] = []
        if let text = query["acrValues"], !iframeOnly {
            guard let parsed = StepUp.parseACRValues(text) else { return BFFResponses.problem(.badRequest) }
            acrValues = parsed
        }
        var maxAge: Int64?
        if let text = query["maxAge"], !iframeOnly {
            guard let parsed = StepUp.parseMaxAge(text) else { return BFFResponses.problem(.badRequest) }
            maxAge = parsed
        }
        let metadata: ProviderMetadata
        do {
            metadata = try await provider.metadata()
        } catch {
            context.logger.error("login: identity provider metadata unavailable", metadata: ["bff.error": "\(error)"])
            return BFFResponses.problem(.idpUnavailable)
        }
        if let prompt, !PromptValidator.isValid(prompt, advertised: metadata.promptValuesSupported) {
            return BFFResponses.problem(.invalidPrompt)
        }
        let now = time.now
        var transaction = LoginTransaction.start(
            issuer: configuration.oidc.issuer, returnURL: returnURL, prompt: prompt, now: now, random: random,
            dpop: configuration.oidc.dpop.isEnabled(advertised: metadata.supportsDPoP))
        // SPEC §11.4: a silent login as a top-level navigation (works without third-party cookies)
        // comes back to returnUrl; in an iframe, or when the browser does not say, §3's page.
        transaction.topLevelSilent =
            prompt == "none" && !iframeOnly && request.headers[Self.secFetchDest] == "document"
        transaction.acrValues = acrValues
        transaction.maxAge = maxAge
        let location: String
        do {
            location = try await authorization.url(for: transaction, redirectURI: redirectURI, metadata: metadata)
        } catch {
            context.logger.error("login: authorization request failed", metadata: ["bff.error": "\(error)"])
            return BFFResponses.problem(.idpUnavailable)
        }
        let name = loginCookiePrefix + LoginTransaction.cookieID(forState: transaction.state)
        var cookies = evictLoginTransactions(request.cookieHeader, now: now)
        var cookie = SetCookie(
            name: name,
            value: try sealer.sealToString(transaction.encoded(), purpose: .loginTransaction, binding: name),
            maxAge: LoginTransaction.lifetime, sameSite: .lax)
        cookie.secure = configuration.session.secureCookies
        cookies.append(cookie)
        return BFFResponses.redirect(to: location, cookies: cookies)
    }

    /// Expires the oldest pending logins so at most ``LoginTransaction/maximumPending`` remain
    /// after the new one is added.
    func evictLoginTransactions(_ cookies: CookieHeader, now: UnixTime) -> [SetCookie] {
        let pending = cookies.pairs(withPrefix: loginCookiePrefix)
        guard pending.count >= LoginTransaction.maximumPending else { return [] }
        let aged = pending.map { pair -> (String, UnixTime) in
            let opened = sealer.open(base64URL: pair.value, purpose: .loginTransaction, binding: pair.name)
                .flatMap(LoginTransaction.init(encoded:))
            return (pair.name, opened?.createdAt ?? .min)
        }.sorted { $0.1 < $1.1 }
        return aged.prefix(pending.count - LoginTransaction.maximumPending + 1).map {
            expireCookie($0.0, sameSite: .lax)
        }
    }

    func expireCookie(_ name: String, sameSite: SameSite) -> SetCookie {
        var cookie = SetCookie.expired(name: name, sameSite: sameSite)
        cookie.secure = configuration.session.secureCookies
        return cookie
    }
}
