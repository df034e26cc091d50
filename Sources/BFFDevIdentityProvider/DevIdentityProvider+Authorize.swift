import BFFCore
import Crypto
import Hummingbird

extension DevIdentityProvider {
    /// `GET /authorize`.
    func authorize(_ request: Request) async -> Response {
        guard let query = FormEncoding.firstValues(request.uri.query) else {
            return Self.errorPage("Malformed request.")
        }
        guard let client = client(query["client_id"]) else { return Self.errorPage("Unknown client.") }
        guard let redirectURI = query["redirect_uri"], client.redirectURIs.contains(redirectURI) else {
            return Self.errorPage("The redirect URI is not registered for this client.")
        }
        let clientState = query["state"]
        func fail(_ code: String) -> Response {
            authorizationRedirect(redirectURI, ["error": code], state: clientState)
        }
        guard query["response_type"] == "code" else { return fail("unsupported_response_type") }
        guard let challenge = query["code_challenge"], challenge.utf8.count == 43,
            query["code_challenge_method"] == "S256"
        else {
            return fail("invalid_request")
        }
        let scope = (query["scope"] ?? "").split(separator: " ").map(String.init)
        guard scope.contains("openid") else { return fail("invalid_scope") }
        let pending = DevIdentityProviderState.AuthorizationRequest(
            clientID: client.clientID, redirectURI: redirectURI, scope: scope, state: clientState,
            nonce: query["nonce"],
            codeChallenge: challenge, prompt: query["prompt"], dpopJKT: query["dpop_jkt"],
            acrValues: (query["acr_values"] ?? "").split(separator: " ").map(String.init),
            maxAge: query["max_age"].flatMap { Int64($0) }, expiresAt: time.now + 600)
        let cookie = CookieHeader(fields: request.headers[values: .cookie]).value(named: Self.sessionCookie)
        let existing: DevIdentityProviderState.IdPSession?
        if let cookie {
            existing = await state.session(String(decoding: cookie, as: UTF8.self))
        } else {
            existing = nil
        }
        // An existing session serves unless the request asks for more: a fresh login, an acr it
        // does not have (OpenID Connect Core: acr_values is voluntary; here `mfa` is honoured), or
        // an authentication more recent than it is.
        if let existing, pending.prompt != "login",
            pending.acrValues.isEmpty || pending.acrValues.contains(existing.acr),
            pending.maxAge.map({ time.now - existing.authTime <= $0 }) ?? true
        {
            return await issueCode(pending, session: existing, cookies: [])
        }
        if pending.prompt == "none" { return fail("login_required") }
        let id = random.token(byteCount: 24)
        await state.addPending(id, pending)
        return loginPage(requestID: id, error: nil, askCode: pending.acrValues.contains("mfa"))
    }

    /// `POST /authorize`: the login form.
    func submitLogin(_ request: Request, form: [UInt8]) async -> Response {
        guard let fields = FormEncoding.decode(form) else { return Self.errorPage("Malformed form.") }
        let values = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let id = values["request_id"], let pending = await state.peekPending(id) else {
            return Self.errorPage("This sign-in request has expired. Go back to the application and try again.")
        }
        guard let user = configuration.users.first(where: { $0.username == values["username"] }),
            constantTime(user.password, values["password"] ?? "")
        else {
            return loginPage(
                requestID: id, error: "Wrong user name or password.", askCode: pending.acrValues.contains("mfa"))
        }
        // The one-time code raises the login to `mfa`; a wrong one is refused, none leaves `pwd`.
        let code = values["otp"] ?? ""
        if !code.isEmpty, !constantTime(configuration.oneTimeCode, code) {
            return loginPage(requestID: id, error: "Wrong one-time code.", askCode: true)
        }
        guard let taken = await state.takePending(id, now: time.now) else {
            return Self.errorPage("This sign-in request has expired. Go back to the application and try again.")
        }
        let session = DevIdentityProviderState.IdPSession(
            user: user, sid: random.token(byteCount: 12), authTime: time.now, acr: code.isEmpty ? "pwd" : "mfa")
        let cookieValue = random.token(byteCount: 24)
        await state.createSession(cookieValue, session)
        await state.countLogin()
        return await issueCode(
            taken, session: session, cookies: ["\(Self.sessionCookie)=\(cookieValue); Path=/; HttpOnly; SameSite=Lax"])
    }

    func issueCode(
        _ pending: DevIdentityProviderState.AuthorizationRequest, session: DevIdentityProviderState.IdPSession,
        cookies: [String]
    ) async -> Response {
        let code = random.token(byteCount: 32)
        let now = time.now
        await state.issueCode(
            code,
            .init(
                request: pending, user: session.user, sid: session.sid, authTime: session.authTime,
                acr: session.acr, expiresAt: now + configuration.codeLifetime))
        var parameters = ["code": code]
        if configuration.sendIssParameter { parameters["iss"] = configuration.issuer }
        return authorizationRedirect(pending.redirectURI, parameters, state: pending.state, cookies: cookies)
    }

    func authorizationRedirect(
        _ redirectURI: String, _ parameters: [String: String], state: String?, cookies: [String] = []
    ) -> Response {
        var pairs = parameters.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let state { pairs.append(("state", state)) }
        if configuration.sendIssParameter && parameters["iss"] == nil { pairs.append(("iss", configuration.issuer)) }
        let separator = redirectURI.contains("?") ? "&" : "?"
        return Self.redirect(redirectURI + separator + FormEncoding.encode(pairs), cookies: cookies)
    }

    func loginPage(requestID: String, error: String?, askCode: Bool = false) -> Response {
        let message = error.map { "<p class=\"error\" role=\"alert\">\(Self.escapeHTML($0))</p>" } ?? ""
        let hints = configuration.users.map { "\(Self.escapeHTML($0.username))/\(Self.escapeHTML($0.password))" }
            .joined(separator: ", ")
        return Self.html(
            """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in - bff dev IdP</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <style>body{font-family:system-ui,sans-serif;background:#f4f5f7;display:flex;justify-content:center;padding-top:10vh}
            form{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 2px 8px #0002;min-width:18rem}
            label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;box-sizing:border-box}
            button{margin-top:1.2rem;width:100%;padding:.6rem;background:#2b59c3;color:#fff;border:0;border-radius:4px}
            .error{color:#b00020}.hint{color:#666;font-size:.85rem}</style></head>
            <body><form method="post" action="\(Self.escapeHTML(configuration.issuer))/authorize">
            <h1>Sign in</h1><p class="hint">Development identity provider. Users: \(hints)</p>\(message)
            <input type="hidden" name="request_id" value="\(Self.escapeHTML(requestID))">
            <label for="username">User name</label><input id="username" name="username" autocomplete="username" autofocus>
            <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">
            \(askCode ? "<label for=\"otp\">One-time code (\(Self.escapeHTML(configuration.oneTimeCode)))</label><input id=\"otp\" name=\"otp\" autocomplete=\"one-time-code\">" : "")
            <button id="login" type="submit">Sign in</button></form></body></html>
            """, status: error == nil ? .ok : .unauthorized,
            formTargets: configuration.clients.flatMap { $0.redirectURIs.compactMap { WebURL($0)?.origin } })
    }

    static func errorPage(_ message: String) -> Response {
        html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title></head><body><h1>Error</h1><p>\(escapeHTML(message))</p></body></html>",
            status: .badRequest)
    }

    static func escapeHTML(_ text: String) -> String {
        var output = ""
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.append(character)
            }
        }
        return output
    }

    func constantTime(_ a: String, _ b: String) -> Bool {
        Array(SHA256.hash(data: Array(a.utf8))) == Array(SHA256.hash(data: Array(b.utf8)))
    }
}
