import AsyncHTTPClient
import BFFCore
import NIOCore

extension DevIdentityProvider {
    /// Sends an OIDC Back-Channel Logout token to every client of the ended session that registered a
    /// back-channel URI. Delivery happens before end_session answers, so tests and the demo see the
    /// effect at once; each POST has a 5 s timeout and failures are only counted.
    func sendBackchannelLogout(sid: String, subject: String?, clients: Set<String>) async {
        let targets = configuration.clients.filter { clients.contains($0.clientID) && $0.backchannelLogoutURI != nil }
        guard !targets.isEmpty else { return }
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        for client in targets {
            guard let uri = client.backchannelLogoutURI else { continue }
            var claims: [String: JSONValue] = [
                "iss": .string(configuration.issuer), "aud": .string(client.clientID), "iat": .int(time.now),
                "jti": .string(random.token(byteCount: 16)), "sid": .string(sid),
                "events": .object(["http://schemas.openid.net/event/backchannel-logout": .object([:])]),
            ]
            if let subject { claims["sub"] = .string(subject) }
            var delivered = false
            if let token = try? keys.sign(claims: claims, algorithm: configuration.signingAlgorithm, type: "logout+jwt")
            {
                var request = HTTPClientRequest(url: uri)
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
                request.body = .bytes(ByteBuffer(string: FormEncoding.encode([("logout_token", token)])))
                if let response = try? await http.execute(request, timeout: .seconds(5)) {
                    delivered = response.status == .ok
                    _ = try? await response.body.collect(upTo: 64 * 1024)
                }
            }
            await state.countBackchannel(delivered: delivered)
        }
        try? await http.shutdown()
    }
}
