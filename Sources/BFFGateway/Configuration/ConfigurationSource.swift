import BFFCore
import Crypto
import Foundation

/// Where the running configuration came from, as the admin listener's `GET /config` shows it:
/// the file, a fingerprint of its bytes, when it was loaded and the names of the `BFF_*`
/// environment variables that override it. Never a value: the file may hold secrets, and so may
/// the variables. The fingerprint is HMAC-SHA256 under a key made at process start, not a plain
/// SHA-256: a plain hash of a file whose only unknown is a short inline secret could be guessed
/// offline. It tells whether the running file changed (a reload, an edit) within one process.
struct ConfigurationSource: Sendable, Equatable {
    /// The file's path as given to `--config`.
    var path: String
    /// Lowercase hex HMAC-SHA256 of the file's bytes under ``processKey``.
    var fingerprint: String
    /// When the file was read.
    var loadedAt: Date
    /// The `BFF_*` variables in effect, sorted (names only).
    var environmentOverrides: [String]

    init(path: String, contents: some DataProtocol, environment: [String: String], loadedAt: Date = Date()) {
        self.path = path
        self.fingerprint = HMAC<SHA256>.authenticationCode(for: contents, using: Self.processKey)
            .map { String(format: "%02x", $0) }.joined()
        self.loadedAt = loadedAt
        self.environmentOverrides = environment.keys.filter { $0.hasPrefix("BFF_") }.sorted()
    }

    /// The fingerprints' key: random, made once per process.
    static let processKey = SymmetricKey(size: .bits256)

    /// The JSON `GET /config` answers (SPEC §11: `frontends` lists the named frontends in service;
    /// a single-frontend configuration has none).
    func json(frontends: [String]) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return "{\"file\":" + JSONText.quote(path) + ",\"fingerprint\":\"" + fingerprint + "\",\"loadedAt\":\""
            + formatter.string(from: loadedAt) + "\",\"environmentOverrides\":["
            + environmentOverrides.map(JSONText.quote).joined(separator: ",") + "],\"frontends\":["
            + frontends.map(JSONText.quote).joined(separator: ",") + "]}"
    }
}
