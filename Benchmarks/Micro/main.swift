// Micro-benchmark of the per-request session work: parse the Cookie header, open the sealed ticket
// (AES-256-GCM), look the session up in the store, open the session record, decode it.
//
//   swift build -c release --product bff-micro-bench && .build/release/bff-micro-bench
import BFFCore

let iterations = 200_000
let rounds = 5

func makeSession(_ index: Int, now: UnixTime) -> Session {
    let claims =
        #"{"sub":"user-\#(index)","name":"User \#(index)","email":"user\#(index)@example.com","sid":"sid-\#(index)","iss":"https://idp.example.com","aud":"bff","iat":\#(now),"exp":\#(now + 300)}"#
    return Session(
        issuer: "https://idp.example.com", subject: "user-\(index)", idpSessionID: "sid-\(index)",
        logoutID: "sid-\(index)",
        claimsJSON: Array(claims.utf8),
        tokens: TokenSet(
            accessToken: String(repeating: "a", count: 900), accessTokenExpiresAt: now + 300, tokenType: "Bearer",
            refreshToken: String(repeating: "r", count: 64), idToken: String(repeating: "i", count: 900)),
        createdAt: now, renewedAt: now)
}

func measure(kind: SessionStoreKind, sessions: Int) async throws -> [Double] {
    let keyRing = try KeyRing(keys: [KeyRing.Key(id: "k1", secret: SystemSecureRandom().bytes(32))])
    var configuration = SessionConfiguration(store: kind)
    configuration.idleTimeout = .seconds(3600)
    let manager = SessionManager(
        configuration: configuration, sealer: Sealer(keyRing: keyRing), store: MemorySessionStore(),
        revocations: RevocationList(retention: 86400))
    let now = SystemTimeSource().now
    var headers: [String] = []
    for index in 0..<sessions {
        let cookies = try await manager.create(
            makeSession(index, now: now), replacing: nil, cookies: CookieHeader(bytes: []))
        let value = cookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; ")
        headers.append("_ga=GA1.1.123456789.1700000000; theme=dark; " + value + "; lang=en")
    }
    var results: [Double] = []
    for _ in 0..<rounds {
        var found = 0
        let clock = ContinuousClock()
        let elapsed = await clock.measure {
            for iteration in 0..<iterations {
                let header = CookieHeader(fields: CollectionOfOne(headers[iteration % headers.count]))
                if (try? await manager.load(cookies: header)) != nil { found += 1 }
            }
        }
        precondition(found == iterations, "every lookup must succeed")
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        results.append(nanoseconds / Double(iterations) / 1000)
    }
    return results.sorted()
}

for (kind, sessions) in [(SessionStoreKind.memory, 10_000), (.memory, 100_000), (.cookie, 10_000)] {
    let results = try await measure(kind: kind, sessions: sessions)
    let median = results[results.count / 2]
    print(
        "store=\(kind) sessions=\(sessions) iterations=\(iterations)x\(rounds): median \(format2(median)) µs/request"
            + " (min \(format2(results[0])), max \(format2(results[results.count - 1])))")
}

// DPoP: what one upstream proof costs (ES256 signature, `ath`, the JSON and base64url around them).
func measureDPoP(_ label: String, _ work: () -> Void) {
    let count = 20_000
    var results: [Double] = []
    for _ in 0..<rounds {
        let elapsed = ContinuousClock().measure { for _ in 0..<count { work() } }
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        results.append(nanoseconds / Double(count) / 1000)
    }
    results.sort()
    print("dpop \(label): median \(format2(results[results.count / 2])) µs (min \(format2(results[0])))")
}
let dpopKey = DPoPKey.generate()
let dpopRandom = SystemSecureRandom()
let dpopToken = String(repeating: "a", count: 900)
measureDPoP("proof (GET, 900-byte token)") {
    _ = dpopKey.proof(
        method: "GET", url: "http://127.0.0.1:18090/orders/7?x=1", accessToken: dpopToken, nonce: nil,
        now: 1_700_000_000, random: dpopRandom)
}
measureDPoP("signature only") { _ = try? dpopKey.key.sign(header: "{}", payload: "{}") }
measureDPoP("random jti") { _ = dpopRandom.token(byteCount: 16) }

func format2(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}
