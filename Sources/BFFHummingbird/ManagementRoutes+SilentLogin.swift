import BFFCore
import HTTPTypes
import Hummingbird

/// Silent login (SPEC §3 iframe mode, §11.4 top-level mode, Duende v3's paths): what the
/// callback answers a `prompt=none` login with.
extension BFF {
    /// `Sec-Fetch-Dest`: what the browser fetches the request for (`document`, `iframe`, …).
    static let secFetchDest = HTTPField.Name("Sec-Fetch-Dest")!  // justified: a valid constant name

    /// `returnURL` (a validated local path) with `parameter` added to its query, before any fragment.
    static func appending(_ parameter: String, to returnURL: String) -> String {
        let fragmentStart = returnURL.firstIndex(of: "#") ?? returnURL.endIndex
        var base = String(returnURL[..<fragmentStart])
        // An outcome already in the URL (a link that kept one) is replaced, not repeated.
        if let queryStart = base.firstIndex(of: "?") {
            let kept = base[base.index(after: queryStart)...].split(separator: "&", omittingEmptySubsequences: true)
                .filter { !$0.hasPrefix("bff-login=") && $0 != "bff-login" }
            base = String(base[..<queryStart]) + (kept.isEmpty ? "" : "?" + kept.joined(separator: "&"))
        }
        let separator = base.contains("?") ? "&" : "?"
        return base + separator + parameter + returnURL[fragmentStart...]
    }

    /// `GET /bff/silent-login-callback` (Duende v3): the iframe page for the current session.
    func silentLoginCallback<Context: BFFRequestContext>(_ request: Request, context: Context) -> Response {
        silentLoginPage(isLoggedIn: context.bff.session != nil, cookies: [])
    }

    /// The page answering a `prompt=none` login inside an iframe.
    func silentLoginPage(isLoggedIn: Bool, cookies: [SetCookie]) -> Response {
        let nonce = random.token(byteCount: 18)
        let body = """
            <!doctype html><html><head><meta charset="utf-8"><title>bff silent login</title></head><body>
            <script nonce="\(nonce)">window.parent.postMessage({source:"bff-silent-login",isLoggedIn:\(isLoggedIn)},\(JSONText.quote(publicOrigin)));</script>
            </body></html>
            """
        return BFFResponses.html(body, status: .ok, scriptNonce: nonce, cookies: cookies)
    }
}
