import BFFCore
import Testing

@Suite("Anti-forgery policy")
struct AntiForgeryPolicyTests {
    let policy = AntiForgeryPolicy(configuration: .init(), publicOrigin: "https://app.example.com")

    @Test func validRequestPasses() {
        #expect(policy.allows(header: ["1"], secFetchSite: nil, origin: []))
        #expect(policy.allows(header: ["1"], secFetchSite: "same-origin", origin: ["https://app.example.com"]))
        #expect(policy.allows(header: ["1"], secFetchSite: "same-site", origin: []))
        #expect(policy.allows(header: ["1"], secFetchSite: "none", origin: ["https://app.example.com:443"]))
    }

    @Test func severalSecFetchSiteValuesAreRefused() {
        #expect(!policy.allows(header: ["1"], secFetchSite: ["same-origin", "cross-site"], origin: []))
        #expect(!policy.allows(header: ["1"], secFetchSite: ["same-origin", "same-origin"], origin: []))
        #expect(policy.isCrossSite(secFetchSite: ["same-origin", "same-origin"], origin: []))
        #expect(policy.allows(header: ["1"], secFetchSite: ["same-origin"], origin: []))
    }

    @Test func missingHeader() { #expect(!policy.allows(header: [], secFetchSite: nil, origin: [])) }
    @Test func wrongValue() { #expect(!policy.allows(header: ["0"], secFetchSite: nil, origin: [])) }
    @Test func emptyValue() { #expect(!policy.allows(header: [""], secFetchSite: nil, origin: [])) }
    @Test func valueWithSpaces() { #expect(!policy.allows(header: [" 1"], secFetchSite: nil, origin: [])) }
    @Test func repeatedHeader() { #expect(!policy.allows(header: ["1", "1"], secFetchSite: nil, origin: [])) }
    @Test func crossSiteFetch() { #expect(!policy.allows(header: ["1"], secFetchSite: "cross-site", origin: [])) }
    @Test func crossSiteFetchUppercase() {
        #expect(!policy.allows(header: ["1"], secFetchSite: "Cross-Site", origin: []))
    }
    @Test func foreignOrigin() {
        #expect(!policy.allows(header: ["1"], secFetchSite: nil, origin: ["https://evil.example"]))
    }
    @Test func nullOrigin() { #expect(!policy.allows(header: ["1"], secFetchSite: nil, origin: ["null"])) }
    @Test func otherPort() {
        #expect(!policy.allows(header: ["1"], secFetchSite: nil, origin: ["https://app.example.com:8443"]))
    }
    @Test func otherScheme() {
        #expect(!policy.allows(header: ["1"], secFetchSite: nil, origin: ["http://app.example.com"]))
    }
    @Test func lookalikeHost() {
        #expect(!policy.allows(header: ["1"], secFetchSite: nil, origin: ["https://app.example.com.evil.example"]))
    }
    @Test func originWithPath() {
        #expect(!policy.allows(header: ["1"], secFetchSite: nil, origin: ["https://app.example.com/x"]))
    }
}
