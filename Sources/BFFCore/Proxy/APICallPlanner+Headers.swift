extension APICallPlanner {
    /// The plan: the client's fields the header policy lets through, then the gateway's own —
    /// `X-Forwarded-For` (a trusted proxy's chain plus the peer), `-Proto`, `-Host` from the
    /// public origin, and the bearer token.
    func plan(_ skeleton: Skeleton, credential: APICredential?, cookies: [SetCookie], session: Session?)
        -> APICallPlan
    {
        let request = skeleton.request
        let connectionTokens = skeleton.connection.isEmpty ? [] : HeaderPolicy.connectionTokens(skeleton.connection)
        let trustedForwarding = isTrustedProxy(request.remoteAddress)
        var forwarded: [APICallRequest.Field] = []
        forwarded.reserveCapacity(request.fields.count)
        var forwardedFor: String?
        for field in request.fields {
            guard
                policy.forwardsRequestHeader(
                    field.lowercasedName, connectionTokens: connectionTokens, trustedForwarding: trustedForwarding)
            else { continue }
            if field.lowercasedName == "x-forwarded-for" {
                forwardedFor = forwardedFor.map { $0 + ", " + field.value } ?? field.value
                continue
            }
            // WebSocket handshakes: the bridge opens its own upstream connection with its own
            // handshake fields; only the gateway's fields go up.
            if skeleton.entry.route.websocket { continue }
            forwarded.append(field)
        }
        if let remoteAddress = request.remoteAddress {
            forwardedFor = forwardedFor.map { $0 + ", " + remoteAddress } ?? remoteAddress
        }
        var gateway: [(name: String, value: String)] = []
        gateway.reserveCapacity(4)
        if let forwardedFor { gateway.append(("X-Forwarded-For", forwardedFor)) }
        gateway.append(("X-Forwarded-Proto", forwardedProto))
        gateway.append(("X-Forwarded-Host", forwardedHost))
        if let credential {
            if let key = credential.dpop {
                // RFC 9449 §7: the DPoP scheme and a fresh proof for this request, `htu` being
                // the upstream URL without its query.
                gateway.append(("Authorization", "DPoP " + credential.token))
                gateway.append(
                    (
                        "DPoP",
                        proof(
                            key, token: credential.token, method: request.method, skeleton.entry.upstream,
                            skeleton.pathAndQuery)
                    ))
            } else {
                gateway.append(("Authorization", "Bearer " + credential.token))
            }
        }
        return APICallPlan(
            api: skeleton.entry.prefix, planned: skeleton.entry,
            pathAndQuery: skeleton.pathAndQuery, method: request.method, forwardedFields: forwarded,
            gatewayFields: gateway, body: skeleton.body, expectsContinue: skeleton.expectsContinue, cookies: cookies,
            sessionLogoutID: session?.logoutID, dpop: credential?.dpop.map { ($0, credential?.token ?? "") })
    }

    /// A fresh DPoP proof for a call to `upstream` (RFC 9449 §7), with the nonce the upstream last
    /// asked for, if any.
    func proof(_ key: DPoPKey, token: String, method: String, _ upstream: APIUpstream, _ pathAndQuery: String)
        -> String
    {
        key.proof(
            method: method, url: upstream.origin + pathAndQuery, accessToken: token,
            nonce: dpopNonces.withLock { $0[upstream.origin] }, now: sessions.now, random: random)
    }

    /// The challenge in an upstream's response, if any (see ``UpstreamChallenge``); a DPoP nonce is
    /// remembered for the upstream, so later proofs carry it from the start.
    public func challenge<Field>(
        in plan: APICallPlan, status: Int, fields: some Sequence<Field>, name: (Field) -> String,
        value: (Field) -> String
    ) -> UpstreamChallenge? {
        // Only calls made for a signed-in user: an upstream of a `none` or `client` route cannot
        // send the browser to a login.
        guard status == 401, plan.hasSession, plan.planned.route.token.usesUserToken else { return nil }
        let found = UpstreamChallenge.read(status: status, fields: fields, name: name, value: value)
        if case .dpopNonce(let nonce) = found {
            guard plan.isDPoPBound else { return nil }
            dpopNonces.withLock { $0[plan.upstream.origin] = nonce }
        }
        return found
    }

    /// `plan` with a new DPoP proof (a retry: a new `jti`, the upstream's latest nonce); nil when
    /// the call is not DPoP-bound.
    public func resigned(_ plan: APICallPlan) -> APICallPlan? {
        guard let dpop = plan.dpop else { return nil }
        let fields = plan.gatewayFields.map { field in
            field.name == "DPoP"
                ? (
                    name: "DPoP",
                    value: proof(dpop.key, token: dpop.token, method: plan.method, plan.upstream, plan.pathAndQuery)
                )
                : field
        }
        return APICallPlan(
            api: plan.api, planned: plan.planned, pathAndQuery: plan.pathAndQuery,
            method: plan.method, forwardedFields: plan.forwardedFields, gatewayFields: fields, body: plan.body,
            expectsContinue: plan.expectsContinue, cookies: plan.cookies, sessionLogoutID: plan.sessionLogoutID,
            dpop: dpop)
    }

    /// The response header policy over any header representation: `keep` receives each upstream
    /// field the browser may see. `connection` holds the response's `Connection` values.
    @inlinable
    public func filterBrowserHeaders<Field>(
        _ upstream: some Sequence<Field>, connection: [String], lowercasedName: (Field) -> String,
        value: (Field) -> String, keep: (Field) -> Void
    ) {
        let responseConnection = connection.isEmpty ? [] : HeaderPolicy.connectionTokens(connection)
        for field in upstream
        where responsePolicy.forwardsResponseHeader(
            lowercasedName(field), value: value(field), connectionTokens: responseConnection)
        {
            keep(field)
        }
    }

    /// The header policy (responses).
    public var responsePolicy: HeaderPolicy { policy }
}
