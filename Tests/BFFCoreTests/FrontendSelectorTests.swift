import BFFCore
import Testing

/// Which frontend a request belongs to (SPEC §11.3): most specific wins; none is none.
@Suite("Frontend selection")
struct FrontendSelectorTests {
    let selector = FrontendSelector([
        FrontendMatch(host: "shop.example.com"),  // 0
        FrontendMatch(host: "shop.example.com", pathPrefix: "/admin"),  // 1
        FrontendMatch(pathPrefix: "/docs"),  // 2
        FrontendMatch(pathPrefix: "/docs/v2"),  // 3
        FrontendMatch(host: "App.Example.com:8443"),  // 4
    ])

    @Test(arguments: [
        ("shop.example.com", "/", 0), ("shop.example.com", "/cart", 0),
        ("shop.example.com", "/admin", 1), ("shop.example.com", "/admin/bff/user", 1),
        ("shop.example.com", "/admin?x=1", 1),
        // host beats a path prefix alone
        ("shop.example.com", "/docs/x", 0),
        ("other.example.com", "/docs", 2), ("other.example.com", "/docs/v2/x", 3), ("other.example.com", "/docs/v1", 2),
        // host names compare case-insensitively, ports exactly
        ("SHOP.example.COM", "/", 0), ("app.example.com:8443", "/", 4),
    ])
    func selects(host: String, path: String, expected: Int) {
        #expect(selector.select(host: host, path: path) == expected)
    }

    @Test(arguments: [
        ("other.example.com", "/"), ("other.example.com", "/docsx"), ("other.example.com", "/doc"),
        ("shop.example.com.evil.com", "/"), ("shop.example.com:443", "/"), ("app.example.com", "/"),
        ("app.example.com:8444", "/"), ("", "/"),
    ])
    func selectsNoneWhenNothingMatches(host: String, path: String) {
        #expect(selector.select(host: host, path: path) == nil)
    }

    @Test func aMissingHostMatchesOnlyFrontendsWithoutHost() {
        #expect(selector.select(host: String?.none, path: "/docs/a") == 2)
        #expect(selector.select(host: String?.none, path: "/") == nil)
    }

    @Test func aFrontendWithoutMatchServesEverythingAndLosesToAnyOther() {
        let selector = FrontendSelector([FrontendMatch(), FrontendMatch(pathPrefix: "/app")])
        #expect(selector.select(host: "anything", path: "/x") == 0)
        #expect(selector.select(host: String?.none, path: "/app/x") == 1)
        // "/" as a prefix is the same as none
        #expect(FrontendMatch(pathPrefix: "/") == FrontendMatch())
    }
}
