import BFFCore
import Foundation

/// One frontend of several served by one gateway (SPEC §11.3 `frontends:`): its name, how its
/// requests are recognised, and its whole effective BFF configuration (the top-level sections with
/// its own keys over them, paths under its prefix).
struct FrontendSettings: Sendable {
    /// `[a-z0-9-]{1,32}`, unique.
    var name: String
    var match: FrontendMatch
    var bff: BFFConfiguration
}

extension FrontendSettings {
    /// The sections a frontend may set; everything else (server, keys, the store, logging) is the
    /// process's and shared.
    static let keys: Set<String> = [
        "name", "match", ServerConfiguration.Key.publicOrigin.rawValue, BFFConfiguration.Key.oidc.rawValue,
        BFFConfiguration.Key.session.rawValue, BFFConfiguration.Key.apis.rawValue,
        BFFConfiguration.Key.staticFiles.rawValue,
    ]
    /// Session keys that belong to the process, not to one frontend.
    static let sharedSessionKeys: [SessionConfiguration.Key] = [
        .store, .sqlite, .postgres, .cleanupInterval, .storeTimeout,
    ]

    /// Reads `frontends:` over `defaults` (the top-level configuration, already read): each entry
    /// inherits key by key, `apis:` replaces the default list when present, and a path-prefix
    /// frontend's endpoints, callbacks and API routes move under its prefix. Problems go to `reader`.
    static func readAll(_ top: ConfigSection, defaults: BFFConfiguration) -> [FrontendSettings] {
        guard let raw = top.raw("frontends") else { return [] }
        guard let list = raw as? [Any] else {
            top.problem("frontends", "must be a list", "write - {name: shop, match: {host: shop.example.com}}")
            return []
        }
        var frontends: [FrontendSettings] = []
        for index in list.indices {
            let section = top.section("frontends[\(index)]")
            guard let entry = list[index] as? [String: Any] else {
                top.problem("frontends[\(index)]", "must be a mapping", "write {name: shop, match: {host: ...}}")
                continue
            }
            for key in entry.keys where !keys.contains(key) {
                section.problem(
                    key, "cannot be set per frontend",
                    "set it at the top level (shared by every frontend) or remove it")
                _ = section.raw(key)
            }
            if let frontend = read(section, top: top, defaults: defaults) { frontends.append(frontend) }
        }
        checkTogether(frontends, top: top)
        return frontends
    }

    static func read(_ section: ConfigSection, top: ConfigSection, defaults: BFFConfiguration) -> FrontendSettings? {
        guard let name = section.string("name") else {
            section.problem("name", "is required", "give every frontend a name such as shop")
            return nil
        }
        if !isValidName(name) {
            section.problem("name", "'\(name)' is not 1-32 of a-z, 0-9 and -", "use a short name such as shop")
        }
        let matchSection = section.section("match")
        let host = matchSection.string("host")
        let prefix = matchSection.string("pathPrefix")
        if host == nil && prefix == nil {
            section.problem(
                "match", "needs host and/or pathPrefix", "write match: {host: shop.example.com} or {pathPrefix: /shop}")
        }
        if let host, host.isEmpty || host.contains(where: { $0 == "/" || $0 == " " || $0 == "@" }) {
            matchSection.problem("host", "'\(host)' is not a host name", "write the Host header, e.g. shop.example.com")
        }
        if let prefix, !isValidPrefix(prefix) {
            matchSection.problem(
                "pathPrefix", "'\(prefix)' is not a path prefix like /shop", "start with / and end without one")
        }
        var bff = defaults
        bff.frontend = name
        let publicOrigin = section.string(ServerConfiguration.Key.publicOrigin)
        if let publicOrigin { bff.server.publicOrigin = publicOrigin }
        if let host {
            if let publicOrigin {
                // The cookie is set for the public origin: it must be the host the frontend is matched by.
                if let url = WebURL(publicOrigin), url.hostHeader.lowercased() != host.lowercased() {
                    section.problem(
                        "publicOrigin", "'\(publicOrigin)' is not on match.host \(host)",
                        "use an origin on \(host), e.g. https://\(host)")
                }
            } else {
                section.problem("publicOrigin", "is required with match.host", "write publicOrigin: https://\(host)")
            }
        }
        bff.oidc.read(section.section(of: OIDCConfiguration.Key.self))
        let session = section.section(of: SessionConfiguration.Key.self)
        for key in sharedSessionKeys where session.raw(key) != nil {
            session.problem(key, "is shared by every frontend", "set \(key.path) at the top level")
        }
        bff.session.read(session)
        bff.session.store = defaults.session.store
        // The cookie name: the frontend's, else one set at the top level, else after the frontend.
        if session.string(SessionConfiguration.Key.cookieName) == nil
            && top.section(of: SessionConfiguration.Key.self).string(SessionConfiguration.Key.cookieName) == nil
        {
            bff.session.cookieName = (bff.session.secureCookies ? "__Host-bff-" : "bff-") + name
        }
        bff.staticFiles.read(section.section(of: StaticFilesConfiguration.Key.self))
        if let apis = section.raw(BFFConfiguration.Key.apis) {
            bff.apis = []
            if let list = apis as? [Any] {
                for (index, item) in list.enumerated() {
                    let path = section.path(APIRouteConfiguration.Key.section + "[\(index)]")
                    if let route = GatewayConfigurationLoader.parseRoute(item, path: path, reader: section.reader) {
                        bff.apis.append(route)
                    }
                }
            } else {
                section.problem(
                    BFFConfiguration.Key.apis, "must be a list",
                    "write - {path: /api/x, upstream: http://127.0.0.1:5090}")
            }
        }
        if let prefix, isValidPrefix(prefix), prefix != "/" {
            // Every endpoint of a path-prefix frontend sits under its prefix.
            bff.managementPrefix = prefix + bff.managementPrefix
            bff.homePath = prefix + "/"
            bff.oidc.callbackPath = prefix + bff.oidc.callbackPath
            bff.oidc.postLogoutCallbackPath = prefix + bff.oidc.postLogoutCallbackPath
            for index in bff.apis.indices { bff.apis[index].path = prefix + bff.apis[index].path }
        }
        return FrontendSettings(name: name, match: FrontendMatch(host: host, pathPrefix: prefix), bff: bff)
    }

    /// Rules between frontends: unique names, distinct matches, and no two frontends that could
    /// share a browser writing the same cookie.
    static func checkTogether(_ frontends: [FrontendSettings], top: ConfigSection) {
        var names: [String: Int] = [:]
        var matches: [FrontendMatch: Int] = [:]
        var cookies: [String: [Int]] = [:]
        for (index, frontend) in frontends.enumerated() {
            let section = top.section("frontends[\(index)]")
            if let first = names[frontend.name] {
                section.problem(
                    "name", "'\(frontend.name)' is also frontends[\(first)]'s name", "give each its own name")
            } else {
                names[frontend.name] = index
                // (A repeated name repeats its default cookie name: reported once, as the name.)
                // Two frontends a browser may visit on one host must not overwrite each other's cookie
                // (on different hosts the same name is fine: the sealed value is bound to its frontend).
                // Cookies are not scoped by port: `host:1` and `host:2` are one host for them.
                let name = frontend.bff.session.cookieName
                if let first = cookies[name, default: []].first(where: {
                    guard let other = frontends[$0].match.host.map(cookieHost),
                        let this = frontend.match.host.map(cookieHost)
                    else { return true }
                    return other == this
                }) {
                    section.problem(
                        "session.cookieName", "'\(name)' is also frontends[\(first)]'s, on the same host",
                        "leave it out (default __Host-bff-<name>) or give each frontend its own")
                }
                cookies[name, default: []].append(index)
            }
            if let first = matches[frontend.match] {
                section.problem("match", "is the same as frontends[\(first)]'s", "make the host or pathPrefix differ")
            } else {
                matches[frontend.match] = index
            }
        }
    }

    /// A `Host` value without its port (`[::1]:80` → `[::1]`): what cookies are scoped to.
    static func cookieHost(_ host: String) -> String {
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") { return String(host[...end]) }
        return String(host.prefix { $0 != ":" })
    }

    static func isValidName(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count)
            && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
    }

    static func isValidPrefix(_ prefix: String) -> Bool {
        prefix == "/"
            || (prefix.hasPrefix("/") && !prefix.hasSuffix("/") && !prefix.contains("..") && !prefix.contains("//")
                && prefix.allSatisfy { $0.isLetter || $0.isNumber || "/-._~".contains($0) } && prefix.isASCII)
    }
}

extension String {
    fileprivate var isASCII: Bool { utf8.allSatisfy { $0 < 0x80 } }
}
