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
                let target = skeleton.entry.upstream.origin + skeleton.pathAndQuery
                gateway.append(
                    (
                        "DPoP",
                        key.proof(
                            method: request.method, url: target, accessToken: credential.token, nonce: nil,
                            now: sessions.now, random: random)
                    ))
            } else {
                gateway.append(("Authorization", "Bearer " + credential.token))
            }
        }
        return APICallPlan(
            api: skeleton.entry.prefix, route: skeleton.entry.route, upstream: skeleton.entry.upstream,
            pathAndQuery: skeleton.pathAndQuery, method: request.method, forwardedFields: forwarded,
            gatewayFields: gateway, body: skeleton.body, expectsContinue: skeleton.expectsContinue, cookies: cookies,
            sessionLogoutID: session?.logoutID)
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
