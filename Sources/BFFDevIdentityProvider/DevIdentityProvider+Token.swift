import BFFCore
import Crypto
import Hummingbird

extension DevIdentityProvider {
    /// `POST /token`.
    func token(_ request: Request, form: [UInt8]) async -> Response {
        guard let fields = FormEncoding.decode(form) else { return Self.oauthError("invalid_request") }
        // RFC 6749 §3.2: no parameter twice (a second client_assertion must not be ignored).
        for name in ["client_id", "client_secret", "client_assertion", "client_assertion_type", "grant_type"]
        where fields.filter({ $0.name == name }).count > 1 {
            return Self.oauthError("invalid_request")
        }
        let values = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let client = await authenticateClient(request, values) else {
            return Self.oauthError("invalid_client", status: .unauthorized)
        }
        let grantType = values["grant_type"] ?? ""
        await state.countTokenRequest(grantType)
        let now = time.now
        // RFC 9449: a DPoP proof binds the tokens to its key.
        var jkt: String?
        let proofs = request.headers[values: Self.dpopHeader]
        if !proofs.isEmpty {
            if configuration.dpopNonce, !proofs.contains(where: { Self.proofNonce($0) == currentNonce }) {
                await state.countDPoP(refused: "nonce")
                var response = Self.oauthError("use_dpop_nonce")
                response.headers[Self.dpopNonceHeader] = currentNonce
                return response
            }
            guard proofs.count == 1 else {
                await state.countDPoP(refused: "several proofs")
                return Self.oauthError("invalid_dpop_proof")
            }
            switch dpop.verify(
                proofs[0], method: "POST", url: configuration.issuer + "/token", accessToken: nil,
                nonce: configuration.dpopNonce ? currentNonce : nil, now: now)
            {
            case .success(let thumbprint): jkt = thumbprint
            case .failure(let refusal):
                await state.countDPoP(refused: refusal.reason)
                return Self.oauthError("invalid_dpop_proof")
            }
        }
        // RFC 8707: one resource indicator, one of those configured, becomes the access token's audience.
        let resource = values["resource"]
        if let resource,
            !configuration.resources.contains(resource) || fields.filter({ $0.name == "resource" }).count > 1
        {
            return Self.oauthError("invalid_target")
        }
        switch grantType {
        case "authorization_code":
            guard let code = values["code"], let redeemed = await state.redeemCode(code, now: now),
                redeemed.request.clientID == client.clientID, redeemed.request.redirectURI == values["redirect_uri"]
            else { return Self.oauthError("invalid_grant") }
            guard let verifier = values["code_verifier"], (43...128).contains(verifier.utf8.count),
                Base64URL.encode(Array(SHA256.hash(data: Array(verifier.utf8)))) == redeemed.request.codeChallenge
            else { return Self.oauthError("invalid_grant") }
            if let bound = redeemed.request.dpopJKT, bound != jkt {
                await state.countDPoP(refused: "dpop_jkt")
                return Self.oauthError("invalid_grant")
            }
            return await tokenResponse(
                client: client, user: redeemed.user, sid: redeemed.sid, scope: redeemed.request.scope,
                nonce: redeemed.request.nonce, authTime: redeemed.authTime, acr: redeemed.acr, family: nil, jkt: jkt)
        case "refresh_token":
            guard let token = values["refresh_token"] else { return Self.oauthError("invalid_request") }
            switch await state.useRefresh(token, clientID: client.clientID, jkt: jkt, now: now) {
            case .invalid: return Self.oauthError("invalid_grant")
            case .ok(let grant):
                return await tokenResponse(
                    client: client, user: grant.user, sid: grant.sid, scope: grant.scope, nonce: nil,
                    authTime: grant.authTime, acr: grant.acr, family: grant.family, resource: resource,
                    jkt: grant.dpopJKT ?? jkt)
            }
        case "client_credentials":
            let scope = (values["scope"] ?? "api").split(separator: " ").map(String.init)
            let accessToken =
                (try? mintAccessToken(
                    subject: client.clientID, clientID: client.clientID, scope: scope, sid: nil, audience: resource,
                    jkt: jkt))
                ?? ""
            await state.storeAccess(
                accessToken, user: nil, clientID: client.clientID, expiresAt: now + configuration.accessTokenLifetime,
                family: nil, jkt: jkt)
            if jkt != nil { await state.countDPoP(refused: nil) }
            return Self.json(
                "{\"access_token\":\(JSONText.quote(accessToken)),\"token_type\":\"\(jkt == nil ? "Bearer" : "DPoP")\",\"expires_in\":\(configuration.accessTokenLifetime),\"scope\":\(JSONText.quote(scope.joined(separator: " ")))}"
            )
        case "urn:ietf:params:oauth:grant-type:token-exchange":
            return await exchangeToken(values, client: client, jkt: jkt)
        default:
            return Self.oauthError("unsupported_grant_type")
        }
    }

    /// RFC 8693: the client's user's current access token for one aimed at `audience` (one of
    /// ``DevIdentityProviderConfiguration/exchangeAudiences``) or `resource`, with an `act` claim
    /// naming the client. Tokens of another client are refused.
    func exchangeToken(_ values: [String: String], client: DevClient, jkt: String?) async -> Response {
        let accessType = "urn:ietf:params:oauth:token-type:access_token"
        guard let subjectToken = values["subject_token"], values["subject_token_type"] == accessType,
            values["requested_token_type"].map({ $0 == accessType }) ?? true
        else { return Self.oauthError("invalid_request") }
        let now = time.now
        guard let grant = await state.accessTokenGrant(subjectToken, now: now), grant.clientID == client.clientID
        else { return Self.oauthError("invalid_grant") }
        let audience = values["audience"] ?? values["resource"]
        guard let audience,
            configuration.exchangeAudiences.contains(audience) || configuration.resources.contains(audience)
        else { return Self.oauthError("invalid_target") }
        // The new token holds the subject's scopes or those the IdP's policy grants by exchange
        // (``DevIdentityProviderConfiguration/exchangeScopes``), nothing else; and a
        // DPoP-bound subject is exchanged only with a proof of its key.
        let subjectScope =
            CompactJWS(subjectToken).flatMap { try? JSONValueDecoding.object($0.payloadJSON) }?["scope"]?.stringValue?
            .split(separator: " ").map(String.init) ?? []
        let scope = values["scope"].map { $0.split(separator: " ").map(String.init) } ?? subjectScope
        let allowed = Set(subjectScope).union(configuration.exchangeScopes)
        guard !scope.isEmpty, scope.allSatisfy(allowed.contains) else { return Self.oauthError("invalid_scope") }
        if let bound = await state.accessTokenBinding(subjectToken, now: now) ?? nil, bound != jkt {
            return Self.oauthError("invalid_grant")
        }
        guard
            let accessToken = try? mintAccessToken(
                subject: grant.user.subject, clientID: client.clientID, scope: scope, sid: nil, audience: audience,
                jkt: jkt, actor: client.clientID)
        else { return Self.oauthError("server_error", status: .internalServerError) }
        await state.storeAccess(
            accessToken, user: grant.user, clientID: client.clientID,
            expiresAt: now + configuration.accessTokenLifetime, family: grant.family, jkt: jkt)
        return Self.json(
            "{\"access_token\":\(JSONText.quote(accessToken)),\"issued_token_type\":\"\(accessType)\",\"token_type\":\"\(jkt == nil ? "Bearer" : "DPoP")\",\"expires_in\":\(configuration.accessTokenLifetime),\"scope\":\(JSONText.quote(scope.joined(separator: " ")))}"
        )
    }

    func tokenResponse(
        client: DevClient, user: DevUser, sid: String, scope: [String], nonce: String?, authTime: UnixTime?,
        acr: String? = nil, family: String?, resource: String? = nil, jkt: String? = nil
    ) async -> Response {
        let now = time.now
        await state.recordParticipant(sid: sid, clientID: client.clientID)
        do {
            let accessToken = try mintAccessToken(
                subject: user.subject, clientID: client.clientID, scope: scope, sid: sid, audience: resource, jkt: jkt)
            var claims: [String: JSONValue] = [
                "iss": .string(configuration.issuer), "sub": .string(user.subject), "aud": .string(client.clientID),
                "iat": .int(now), "exp": .int(now + configuration.idTokenLifetime),
                "auth_time": .int(authTime ?? now),
            ]
            if let nonce { claims["nonce"] = .string(nonce) }
            if let acr { claims["acr"] = .string(acr) }
            if configuration.issueSessionID { claims["sid"] = .string(sid) }
            if scope.contains("profile") {
                claims["name"] = .string(user.name)
                claims["preferred_username"] = .string(user.username)
            }
            if scope.contains("email") { claims["email"] = .string(user.email) }
            let idToken = try keys.sign(claims: claims, algorithm: configuration.signingAlgorithm)
            let familyID = family ?? random.token(byteCount: 12)
            await state.storeAccess(
                accessToken, user: user, clientID: client.clientID, expiresAt: now + configuration.accessTokenLifetime,
                family: familyID, jkt: jkt)
            if jkt != nil { await state.countDPoP(refused: nil) }
            var body =
                "{\"access_token\":\(JSONText.quote(accessToken)),\"token_type\":\"\(jkt == nil ? "Bearer" : "DPoP")\",\"expires_in\":\(configuration.accessTokenLifetime),\"id_token\":\(JSONText.quote(idToken)),\"scope\":\(JSONText.quote(scope.joined(separator: " ")))"
            if scope.contains("offline_access") {
                let refreshToken = random.token(byteCount: 32)
                await state.storeRefresh(
                    refreshToken,
                    .init(
                        family: familyID, clientID: client.clientID, user: user, sid: sid, scope: scope,
                        expiresAt: now + configuration.refreshTokenLifetime, used: false, dpopJKT: jkt,
                        authTime: authTime ?? now, acr: acr))
                body += ",\"refresh_token\":\(JSONText.quote(refreshToken))"
            }
            return Self.json(body + "}")
        } catch {
            return Self.oauthError("server_error", status: .internalServerError)
        }
    }

    func mintAccessToken(
        subject: String, clientID: String, scope: [String], sid: String?, audience: String? = nil, jkt: String? = nil,
        actor: String? = nil
    ) throws -> String {
        let now = time.now
        var claims: [String: JSONValue] = [
            "iss": .string(configuration.issuer), "sub": .string(subject), "aud": .string(audience ?? "api"),
            "client_id": .string(clientID), "scope": .string(scope.joined(separator: " ")), "iat": .int(now),
            "exp": .int(now + configuration.accessTokenLifetime), "jti": .string(random.token(byteCount: 16)),
        ]
        if let sid { claims["sid"] = .string(sid) }
        if let jkt { claims["cnf"] = .object(["jkt": .string(jkt)]) }
        if let actor { claims["act"] = .object(["sub": .string(actor)]) }
        return try keys.sign(claims: claims, algorithm: configuration.signingAlgorithm, type: "at+jwt")
    }

    /// client_secret_basic, client_secret_post or private_key_jwt (exactly one of them). Counts
    /// the method that succeeded, or why it was refused.
    func authenticateClient(_ request: Request, _ values: [String: String]) async -> DevClient? {
        let result = await clientAuthentication(request, values)
        switch result {
        case .success(let (client, method)):
            await state.countClientAuthentication(method, refusedBecause: nil)
            return client
        case .failure(let refusal):
            await state.countClientAuthentication("", refusedBecause: refusal.reason)
            return nil
        }
    }

    struct ClientRefusal: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    func clientAuthentication(_ request: Request, _ values: [String: String]) async
        -> Result<(DevClient, String), ClientRefusal>
    {
        let basic = request.headers[.authorization].flatMap { $0.hasPrefix("Basic ") ? $0.dropFirst(6) : nil }
        let methods = [basic != nil, values["client_secret"] != nil, values["client_assertion"] != nil]
        guard methods.filter({ $0 }).count == 1 else { return .failure(ClientRefusal("not exactly one method")) }
        if let assertion = values["client_assertion"] {
            guard values["client_assertion_type"] == ClientAssertionCheck.type else {
                return .failure(ClientRefusal("assertion type"))
            }
            return await authenticateAssertion(assertion, clientID: values["client_id"], endpointPath: request.uri.path)
                .map { ($0, "private_key_jwt") }
        }
        if let basic {
            let encoded = basic.utf8.map {
                $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0
            }
            guard let decoded = Base64URL.decode(encoded), let text = String(validating: decoded, as: UTF8.self),
                let colon = text.firstIndex(of: ":"),
                let id = FormEncoding.decode(Array("a=\(text[..<colon])".utf8))?.first?.value,
                let secret = FormEncoding.decode(Array("a=\(text[text.index(after: colon)...])".utf8))?.first?.value,
                let client = client(id), !client.clientSecret.isEmpty, constantTime(client.clientSecret, secret)
            else { return .failure(ClientRefusal("client secret")) }
            return .success((client, "client_secret_basic"))
        }
        guard let client = client(values["client_id"]), let secret = values["client_secret"],
            !client.clientSecret.isEmpty, constantTime(client.clientSecret, secret)
        else { return .failure(ClientRefusal("client secret")) }
        return .success((client, "client_secret_post"))
    }

    /// RFC 7523 §3 and OpenID Connect Core §9: a signature by one of the client's keys, `iss` =
    /// `sub` = the client id, the URL of the endpoint called (at `endpointPath`) or the issuer in
    /// `aud`, unexpired with at most 5 minutes' lifetime, and a `jti` never seen before.
    func authenticateAssertion(_ assertion: String, clientID formClientID: String?, endpointPath: String) async
        -> Result<DevClient, ClientRefusal>
    {
        guard let jws = CompactJWS(assertion), let claims = try? JSONValueDecoding.object(jws.payloadJSON) else {
            return .failure(ClientRefusal("assertion malformed"))
        }
        guard let algorithm = ClientAssertionCheck.algorithm(jws) else {
            return .failure(ClientRefusal("assertion algorithm"))
        }
        guard let issuer = claims["iss"]?.stringValue, claims["sub"]?.stringValue == issuer,
            formClientID == nil || formClientID == issuer, let client = client(issuer)
        else { return .failure(ClientRefusal("assertion iss/sub")) }
        guard
            client.publicKeys.contains(where: {
                $0.verify(signature: jws.signature, over: jws.signingInput, algorithm: algorithm)
            })
        else { return .failure(ClientRefusal("assertion signature")) }
        let audiences =
            claims["aud"]?.stringValue.map { [$0] } ?? claims["aud"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let endpoint = configuration.issuer + endpointPath.dropFirst(basePath.count)
        guard audiences.contains(where: { $0 == endpoint || $0 == configuration.issuer })
        else { return .failure(ClientRefusal("assertion audience")) }
        let now = time.now
        guard let expires = claims["exp"]?.int64Value, expires > now - 5, expires <= now + 300,
            claims["iat"].map({ ($0.int64Value ?? .max) <= now + 5 }) ?? true,
            claims["nbf"].map({ ($0.int64Value ?? .max) <= now + 5 }) ?? true
        else { return .failure(ClientRefusal("assertion lifetime")) }
        guard let jti = claims["jti"]?.stringValue, !jti.isEmpty, jti.utf8.count <= 256 else {
            return .failure(ClientRefusal("assertion jti"))
        }
        guard await state.useAssertionID(client.clientID + " " + jti, expiresAt: expires, now: now) else {
            return .failure(ClientRefusal("assertion jti replayed"))
        }
        await state.countAssertionAudience(audiences.contains(endpoint) ? "endpoint" : "issuer")
        return .success(client)
    }

    /// `GET|POST /userinfo`.
    func userInfo(_ request: Request) async -> Response {
        func refuse(_ scheme: String, _ error: String) -> Response {
            var response = Self.oauthError(error, status: .unauthorized)
            response.headers[.wwwAuthenticate] = "\(scheme) error=\"\(error)\""
            return response
        }
        guard let authorization = request.headers[.authorization], let space = authorization.firstIndex(of: " ")
        else { return refuse("Bearer", "invalid_token") }
        let scheme = authorization[..<space].lowercased()
        let token = String(authorization[authorization.index(after: space)...])
        let now = time.now
        guard scheme == "bearer" || scheme == "dpop", let binding = await state.accessTokenBinding(token, now: now),
            let user = await state.accessTokenUser(token, now: now)
        else { return refuse("Bearer", "invalid_token") }
        // RFC 9449 §7: a bound token only with the DPoP scheme and a proof of its key.
        if let jkt = binding {
            let proofs = request.headers[values: Self.dpopHeader]
            guard scheme == "dpop", proofs.count == 1,
                case .success(let thumbprint) = dpop.verify(
                    proofs[0], method: request.method.rawValue, url: configuration.issuer + "/userinfo",
                    accessToken: token, now: now),
                thumbprint == jkt
            else { return refuse("DPoP", "invalid_token") }
        } else if scheme != "bearer" {
            return refuse("Bearer", "invalid_token")
        }
        return Self.json(
            "{\"sub\":\(JSONText.quote(user.subject)),\"name\":\(JSONText.quote(user.name)),\"preferred_username\":\(JSONText.quote(user.username)),\"email\":\(JSONText.quote(user.email))}"
        )
    }

    /// `POST /revoke` (RFC 7009: always 200 for an authenticated client).
    func revoke(_ request: Request, form: [UInt8]) async -> Response {
        guard let fields = FormEncoding.decode(form) else { return Self.oauthError("invalid_request") }
        let values = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let client = await authenticateClient(request, values) else {
            return Self.oauthError("invalid_client", status: .unauthorized)
        }
        guard let token = values["token"] else { return Self.oauthError("invalid_request") }
        await state.revoke(token, clientID: client.clientID)
        return Response(status: .ok, headers: [.cacheControl: "no-store"])
    }

    /// `GET /end_session` (RP-Initiated Logout 1.0).
    func endSession(_ request: Request) async -> Response {
        guard let query = FormEncoding.firstValues(request.uri.query) else {
            return Self.errorPage("Malformed request.")
        }
        var clientID = query["client_id"]
        var sid: String?
        if let hint = query["id_token_hint"] {
            let parts = hint.split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 3, let payload = Base64URL.decode(String(parts[1])),
                let claims = try? JSONValueDecoding.object(payload)
            {
                guard claims["iss"]?.stringValue == configuration.issuer else {
                    return Self.errorPage("id_token_hint was not issued here.")
                }
                sid = claims["sid"]?.stringValue
                if clientID == nil { clientID = claims["aud"]?.stringValue }
            } else {
                return Self.errorPage("Malformed id_token_hint.")
            }
        }
        let cookie = CookieHeader(fields: request.headers[values: .cookie]).value(named: Self.sessionCookie)
        var ended: [String] = []
        if let cookie, let session = await state.session(String(decoding: cookie, as: UTF8.self)) {
            ended.append(session.sid)
        }
        if let sid, !ended.contains(sid) { ended.append(sid) }
        var frames: [String] = []
        for endedSID in ended {
            let (clients, subject) = await state.endSessionNotifying(sid: endedSID)
            await sendBackchannelLogout(sid: endedSID, subject: subject, clients: clients)
            for client in configuration.clients where clients.contains(client.clientID) {
                guard let uri = client.frontchannelLogoutURI else { continue }
                let parameters = FormEncoding.encode([("iss", configuration.issuer), ("sid", endedSID)])
                frames.append(uri + (uri.contains("?") ? "&" : "?") + parameters)
            }
        }
        let expire = "\(Self.sessionCookie)=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        var location: String?
        if let target = query["post_logout_redirect_uri"] {
            guard let client = client(clientID), client.postLogoutRedirectURIs.contains(target) else {
                return Self.errorPage("The post-logout redirect URI is not registered for this client.")
            }
            var pairs: [(String, String)] = []
            if let state = query["state"] { pairs.append(("state", state)) }
            location =
                pairs.isEmpty ? target : target + (target.contains("?") ? "&" : "?") + FormEncoding.encode(pairs)
        }
        if frames.isEmpty, let location { return Self.redirect(location, cookies: [expire]) }
        // Front-channel logout: the relying parties' logout pages load in hidden iframes, then the
        // browser continues to the post-logout redirect (after the frames had a moment to load).
        let iframes = frames.map {
            "<iframe src=\"\(Self.escapeHTML($0))\" title=\"logout\" style=\"display:none\"></iframe>"
        }.joined()
        let refresh = location.map { "<meta http-equiv=\"refresh\" content=\"1;url=\(Self.escapeHTML($0))\">" } ?? ""
        let next = location.map { "<p><a href=\"\(Self.escapeHTML($0))\">Continue</a></p>" } ?? ""
        return Self.html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\(refresh)<title>Signed out</title></head><body><h1>You are signed out.</h1>\(next)\(iframes)</body></html>",
            cookies: [expire], frames: frames.compactMap { WebURL($0)?.origin })
    }
}

extension DevIdentityProvider {
    /// The `nonce` claim of a proof, before any check (to decide whether to ask for one).
    static func proofNonce(_ proof: String) -> String? {
        guard let jws = CompactJWS(proof), let claims = try? JSONValueDecoding.object(jws.payloadJSON) else {
            return nil
        }
        return claims["nonce"]?.stringValue
    }
}

/// The parts of a client assertion check that do not need the IdP's state.
enum ClientAssertionCheck {
    static let type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    /// The header's algorithm when it is an accepted asymmetric one and nothing else in the header
    /// asks for special treatment (`crit`, an embedded key).
    static func algorithm(_ jws: CompactJWS) -> JWSAlgorithm? {
        guard let header = try? JSONValueDecoding.object(jws.headerJSON), header["crit"] == nil,
            header["jwk"] == nil, header["jku"] == nil, header["x5u"] == nil,
            let name = header["alg"]?.stringValue
        else { return nil }
        return JWSAlgorithm(rawValue: name)
    }
}
