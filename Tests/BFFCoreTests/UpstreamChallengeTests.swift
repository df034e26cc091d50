import BFFCore
import Testing

@Suite("Upstream challenges (RFC 9470 step-up, RFC 9449 nonce)")
struct UpstreamChallengeTests {
    func read(_ status: Int, _ fields: [(String, String)]) -> UpstreamChallenge? {
        UpstreamChallenge.read(status: status, fields: fields, name: { $0.0 }, value: { $0.1 })
    }

    @Test func stepUpChallengesBecomeTheStepUpProblem() {
        // RFC 9470 §3's example, and with max_age.
        #expect(
            read(
                401,
                [
                    (
                        "WWW-Authenticate",
                        #"Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR""#
                    )
                ])
                == .stepUp(.stepUpRequired(acrValues: ["myACR"], maxAge: nil)))
        #expect(
            read(401, [("www-authenticate", #"DPoP algs="ES256", error=insufficient_user_authentication, max_age=5"#)])
                == .stepUp(.stepUpRequired(acrValues: nil, maxAge: 5)))
        // Hostile values are dropped, not passed to the browser.
        #expect(
            read(
                401,
                [
                    (
                        "WWW-Authenticate",
                        #"Bearer error="insufficient_user_authentication", acr_values="ok a\"b <x>", max_age="-3""#
                    )
                ])
                == .stepUp(.stepUpRequired(acrValues: ["ok"], maxAge: nil)))
        #expect(read(403, [("WWW-Authenticate", #"Bearer error="insufficient_user_authentication""#)]) == nil)
        #expect(read(401, [("WWW-Authenticate", #"Bearer error="invalid_token""#)]) == nil)
    }

    @Test func dpopNonceChallengesNeedTheDPoPSchemeAndAValidNonce() {
        #expect(
            read(
                401,
                [
                    (
                        "WWW-Authenticate",
                        #"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
                    ), ("DPoP-Nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v"),
                ])
                == .dpopNonce("eyJ7S_zG.eyJH0-Z.HX4w-7v"))
        // Several challenges in one field, the DPoP one second.
        #expect(
            read(
                401,
                [
                    ("WWW-Authenticate", #"Bearer realm="api, v2", DPoP algs="ES256 PS256", error="use_dpop_nonce""#),
                    ("DPoP-Nonce", "n"),
                ])
                == .dpopNonce("n"))
        #expect(read(401, [("WWW-Authenticate", #"DPoP error="use_dpop_nonce""#)]) == nil, "no nonce")
        #expect(read(401, [("WWW-Authenticate", #"DPoP error="use_dpop_nonce""#), ("DPoP-Nonce", "a b")]) == nil)
        #expect(read(401, [("WWW-Authenticate", #"DPoP error="use_dpop_nonce""#), ("DPoP-Nonce", "x\r\ny")]) == nil)
        #expect(read(401, [("WWW-Authenticate", #"Bearer error="use_dpop_nonce""#), ("DPoP-Nonce", "n")]) == nil)
        #expect(read(401, [("WWW-Authenticate", String(repeating: "\"", count: 20_000))]) == nil)
    }
}
