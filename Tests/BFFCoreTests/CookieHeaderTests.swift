import BFFCore
import Testing

@Suite("Cookie header parsing")
struct CookieHeaderTests {
    func value(_ header: String, _ name: String) -> String? {
        CookieHeader(bytes: Array(header.utf8)).value(named: name).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func simple() {
        #expect(value("a=1; b=2", "b") == "2")
        #expect(value("a=1;b=2", "a") == "1")
        #expect(value("  a = 1 ;  b=2  ", "a") == "1")
    }

    @Test func firstOccurrenceWins() { #expect(value("s=first; s=second", "s") == "first") }

    @Test func quotedValue() { #expect(value("s=\"abc\"", "s") == "abc") }

    @Test func missing() {
        #expect(value("", "s") == nil)
        #expect(value("sx=1; xs=2", "s") == nil)
    }

    @Test(arguments: [
        ";;;;", "=", "==", "s", "s;", "=value", "s=a b", "s=a\u{7F}", "s=a,b", "s=\"unterminated", "s\u{0}=1",
        "s=\u{1}", "s=a\\b", "(s)=1", "s=é",
    ])
    func hostileInputNeverYieldsABadValue(_ header: String) {
        // Either nothing or a clean cookie-octet value; never a crash.
        if let found = value(header, "s") {
            #expect(
                found.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x3B && $0 != 0x2C && $0 != 0x5C && $0 != 0x22 }
            )
        }
    }

    @Test func hugeHeaderIsHandled() {
        let header = String(repeating: "x=1; ", count: 20_000) + "s=ok"
        #expect(value(header, "s") == "ok")
    }

    @Test func multipleFieldsAreJoined() {
        let header = CookieHeader(fields: ["a=1", "s=2"])
        #expect(header.value(named: "s").map { Array($0) } == Array("2".utf8))
    }

    @Test func prefixListing() {
        let pairs = CookieHeader(
            bytes: Array("__Host-bff-login.a=1; x=2; __Host-bff-login.b=3; __Host-bff-login.a=9".utf8)
        )
        .pairs(withPrefix: "__Host-bff-login.")
        #expect(pairs.map(\.name) == ["__Host-bff-login.a", "__Host-bff-login.b"])
    }

    @Test func setCookieDefaultsAreSecure() {
        let cookie = SetCookie(name: "__Host-bff-session", value: "v", maxAge: 60)
        #expect(cookie.headerValue == "__Host-bff-session=v; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=Strict")
        #expect(SetCookie.expired(name: "n").headerValue.contains("Max-Age=0"))
    }
}
