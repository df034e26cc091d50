import BFFCore
import Testing

@Suite("returnUrl and prompt validation")
struct ReturnURLValidatorTests {
    @Test(arguments: [
        "/", "/app", "/app/page?x=1&y=2", "/a#frag", "/%20space", "/a/b/c.html", "/?returnUrl=/x", "/caf%C3%A9",
    ])
    func localPathsAreAccepted(_ value: String) { #expect(ReturnURLValidator.isValid(value)) }

    @Test(arguments: [
        "", "//evil.example", "/\\evil.example", "\\\\evil.example", "https://evil.example", "http://evil.example/",
        "javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "evil.example", "%2F%2Fevil.example",
        "/%2F%2Fevil.example", "/%2fevil.example", "/%5Cevil.example", "/%5cevil.example", "%2f",
        "/%252F%252Fevil.example",
        "/\tevil", "/\nevil", "/\r\nSet-Cookie:x=y", "/a\\b", "/%09/evil.example", "/%0d%0aLocation:%20x", "/%00",
        " /app", "/\u{7F}", "/%", "/%zz", "/%2", "/é", "//", "///evil.example", "/%2F/evil.example", "/.%2F%2Fevil",
        "/%25252F%25252Fevil", String(repeating: "/a", count: 2000),
    ])
    func hostileValuesAreRejected(_ value: String) { #expect(!ReturnURLValidator.isValid(value)) }

    @Test func promptValues() {
        for value in ["none", "login", "consent", "select_account", "create"] {
            #expect(PromptValidator.isValid(value, advertised: nil))
        }
        #expect(!PromptValidator.isValid("create", advertised: ["none", "login"]))
        #expect(!PromptValidator.isValid("evil", advertised: nil))
        #expect(!PromptValidator.isValid("none login", advertised: nil))
        #expect(!PromptValidator.isValid("", advertised: nil))
    }
}
