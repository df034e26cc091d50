import BFFCore
import BFFForwarder
import HTTPTypes
import Logging

extension RemoteAPIProxy {
    /// A header the gateway adds to upstream requests.
    enum GatewayHeader {
        case forwardedFor, forwardedProto, forwardedHost, authorization
    }

    /// The request header policy over any header representation (the router path uses
    /// swift-http-types fields, the event-loop fast path NIOHTTP1's): `keep` receives each client
    /// field that may go upstream, `add` the gateway's own — `X-Forwarded-*` and the bearer token.
    /// `lowercasedName` gives a field's name in lower case.
    func filterUpstreamHeaders<Field>(
        _ incoming: some Sequence<Field>, connection: [String], remoteAddress: String?, bearer: String?,
        lowercasedName: (Field) -> String, value: (Field) -> String, keep: (Field) -> Void,
        add: (GatewayHeader, String) -> Void
    ) {
        let connectionTokens = connection.isEmpty ? [] : HeaderPolicy.connectionTokens(connection)
        let trustedForwarding =
            trusted.isEmpty
            ? false : remoteAddress.map { address in trusted.contains { $0.contains(address) } } ?? false
        var forwardedFor: String?
        for field in incoming {
            let name = lowercasedName(field)
            guard
                policy.forwardsRequestHeader(
                    name, connectionTokens: connectionTokens, trustedForwarding: trustedForwarding)
            else { continue }
            if name == "x-forwarded-for" {
                forwardedFor = forwardedFor.map { $0 + ", " + value(field) } ?? value(field)
                continue
            }
            keep(field)
        }
        if let remoteAddress { forwardedFor = forwardedFor.map { $0 + ", " + remoteAddress } ?? remoteAddress }
        if let forwardedFor { add(.forwardedFor, forwardedFor) }
        add(.forwardedProto, forwardedProto)
        add(.forwardedHost, forwardedHost)
        if let bearer { add(.authorization, "Bearer " + bearer) }
    }

    /// The request headers for the upstream: the client's minus what the header policy drops, plus
    /// `X-Forwarded-*` and the route's bearer token.
    func upstreamHeaders(_ incoming: HTTPFields, remoteAddress: String?, bearer: String?) -> HTTPFields {
        var headers = HTTPFields()
        headers.reserveCapacity(incoming.count + 4)
        filterUpstreamHeaders(
            incoming, connection: incoming[values: .connection], remoteAddress: remoteAddress, bearer: bearer,
            lowercasedName: { $0.name.canonicalName }, value: { $0.value }, keep: { headers.append($0) },
            add: { header, value in
                switch header {
                case .forwardedFor: headers.set(ForwardingHeaders.forwardedFor, value)
                case .forwardedProto: headers.set(ForwardingHeaders.forwardedProto, value)
                case .forwardedHost: headers.set(ForwardingHeaders.forwardedHost, value)
                case .authorization: headers[.authorization] = value
                }
            })
        return headers
    }

    /// The response header policy over any header representation: `keep` receives each upstream
    /// field the browser may see.
    func filterBrowserHeaders<Field>(
        _ upstream: some Sequence<Field>, connection: [String], lowercasedName: (Field) -> String,
        value: (Field) -> String, keep: (Field) -> Void
    ) {
        let responseConnection = connection.isEmpty ? [] : HeaderPolicy.connectionTokens(connection)
        for field in upstream
        where policy.forwardsResponseHeader(
            lowercasedName(field), value: value(field), connectionTokens: responseConnection)
        {
            keep(field)
        }
    }

    /// The upstream response headers the browser may see (header policy), plus `cookies`.
    func browserHeaders(_ upstream: HTTPFields, cookies: [SetCookie]) -> HTTPFields {
        var responseHeaders = HTTPFields()
        responseHeaders.reserveCapacity(upstream.count)
        filterBrowserHeaders(
            upstream, connection: upstream[values: .connection], lowercasedName: { $0.name.canonicalName },
            value: { $0.value }, keep: { responseHeaders.append($0) })
        for cookie in cookies { responseHeaders.append(HTTPField(name: .setCookie, value: cookie.headerValue)) }
        return responseHeaders
    }
}

/// Forwarding header names (optional like ``ExtraHeaderNames``: no code path can trap).
enum ForwardingHeaders {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")
    static let forwardedHost = HTTPField.Name("X-Forwarded-Host")
}
