import BFFCore
import Crypto
import Foundation

/// Where the running configuration came from, as the admin listener's `GET /config` shows it:
/// the file, the SHA-256 of its bytes, when it was loaded and the names of the `BFF_*` environment
/// variables that override it. Never a value: the file may hold secrets, and so may the variables
/// (a hash of a short secret could be guessed offline, so values are not hashed either).
struct ConfigurationSource: Sendable, Equatable {
    /// The file's path as given to `--config`.
    var path: String
    /// Lowercase hex SHA-256 of the file's bytes.
    var sha256: String
    /// When the file was read.
    var loadedAt: Date
    /// The `BFF_*` variables in effect, sorted (names only).
    var environmentOverrides: [String]

    init(path: String, contents: some DataProtocol, environment: [String: String], loadedAt: Date = Date()) {
        self.path = path
        self.sha256 = SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined()
        self.loadedAt = loadedAt
        self.environmentOverrides = environment.keys.filter { $0.hasPrefix("BFF_") }.sorted()
    }

    /// The JSON `GET /config` answers (SPEC §11: `frontends` lists the named frontends; a
    /// single-frontend configuration has none).
    var json: String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return "{\"file\":" + JSONText.quote(path) + ",\"sha256\":\"" + sha256 + "\",\"loadedAt\":\""
            + formatter.string(from: loadedAt) + "\",\"environmentOverrides\":["
            + environmentOverrides.map(JSONText.quote).joined(separator: ",") + "],\"frontends\":[]}"
    }
}
