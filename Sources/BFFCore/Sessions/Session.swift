/// A user's BFF session: who they are (ID-token claims), the tokens held for them, and its timing.
public struct Session: Sendable, Equatable {
    /// The session's values. Held in one object, copied on write: a session is copied on every
    /// API call (out of the cache of opened sessions, into the loaded session, into the plan), and
    /// a copy is one retain instead of one per field — on objects every event loop touches.
    struct Fields: Sendable, Equatable {
        var issuer: String
        var subject: String
        var idpSessionID: String?
        var logoutID: String
        var claimsJSON: [UInt8]
        var sessionState: String?
        var tokens: TokenSet
        var createdAt: UnixTime
        var renewedAt: UnixTime
        var dpopKey: DPoPKey? = nil
        var authenticationContext: String? = nil
        var authTime: UnixTime? = nil
    }

    /// The values; replaced by a copy before a write when shared (`isKnownUniquelyReferenced`).
    final class Box: @unchecked Sendable {  // justified: `fields` is written only while uniquely referenced
        /// No dynamic exclusivity check on each read: writes happen only on a unique box.
        @exclusivity(unchecked) var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var box: Box

    private mutating func uniqueFields() -> Box {
        if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
        return box
    }

    /// The IdP's issuer.
    public var issuer: String {
        _read { yield box.fields.issuer }
        _modify { yield &uniqueFields().fields.issuer }
        set { uniqueFields().fields.issuer = newValue }
    }
    /// The `sub` claim.
    public var subject: String {
        _read { yield box.fields.subject }
        _modify { yield &uniqueFields().fields.subject }
        set { uniqueFields().fields.subject = newValue }
    }
    /// The IdP `sid` claim, when the IdP sends one.
    public var idpSessionID: String? {
        _read { yield box.fields.idpSessionID }
        _modify { yield &uniqueFields().fields.idpSessionID }
        set { uniqueFields().fields.idpSessionID = newValue }
    }
    /// The value the SPA must echo in `/bff/logout?sid=`: the IdP `sid` if present, else random.
    public var logoutID: String {
        _read { yield box.fields.logoutID }
        _modify { yield &uniqueFields().fields.logoutID }
        set { uniqueFields().fields.logoutID = newValue }
    }
    /// The ID-token (and userinfo) claims as a JSON object, UTF-8 bytes. Decoded only by `/bff/user`.
    public var claimsJSON: [UInt8] {
        _read { yield box.fields.claimsJSON }
        _modify { yield &uniqueFields().fields.claimsJSON }
        set { uniqueFields().fields.claimsJSON = newValue }
    }
    /// `session_state` from the authorization response, if any.
    public var sessionState: String? {
        _read { yield box.fields.sessionState }
        _modify { yield &uniqueFields().fields.sessionState }
        set { uniqueFields().fields.sessionState = newValue }
    }
    /// Tokens held server-side.
    public var tokens: TokenSet {
        _read { yield box.fields.tokens }
        _modify { yield &uniqueFields().fields.tokens }
        set { uniqueFields().fields.tokens = newValue }
    }
    /// When the session was created.
    public var createdAt: UnixTime {
        _read { yield box.fields.createdAt }
        _modify { yield &uniqueFields().fields.createdAt }
        set { uniqueFields().fields.createdAt = newValue }
    }
    /// When it was last used in a sliding way.
    public var renewedAt: UnixTime {
        _read { yield box.fields.renewedAt }
        _modify { yield &uniqueFields().fields.renewedAt }
        set { uniqueFields().fields.renewedAt = newValue }
    }
    /// The session's DPoP key (RFC 9449), when its tokens are sender-constrained.
    public var dpopKey: DPoPKey? {
        _read { yield box.fields.dpopKey }
        _modify { yield &uniqueFields().fields.dpopKey }
        set { uniqueFields().fields.dpopKey = newValue }
    }
    /// The ID token's `acr` (step-up: routes may require one of a list).
    public var authenticationContext: String? {
        _read { yield box.fields.authenticationContext }
        _modify { yield &uniqueFields().fields.authenticationContext }
        set { uniqueFields().fields.authenticationContext = newValue }
    }
    /// The ID token's `auth_time` (step-up: routes may require a recent authentication).
    public var authTime: UnixTime? {
        _read { yield box.fields.authTime }
        _modify { yield &uniqueFields().fields.authTime }
        set { uniqueFields().fields.authTime = newValue }
    }

    public static func == (lhs: Session, rhs: Session) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }

    /// Creates a session.
    public init(
        issuer: String, subject: String, idpSessionID: String?, logoutID: String, claimsJSON: [UInt8],
        sessionState: String? = nil, tokens: TokenSet, createdAt: UnixTime, renewedAt: UnixTime
    ) {
        box = Box(
            Fields(
                issuer: issuer, subject: subject, idpSessionID: idpSessionID, logoutID: logoutID,
                claimsJSON: claimsJSON, sessionState: sessionState, tokens: tokens, createdAt: createdAt,
                renewedAt: renewedAt))
    }

    /// When the session ends if not used again: the earlier of idle and absolute expiry.
    public func expiresAt(idleTimeout: Int64, absoluteTimeout: Int64) -> UnixTime {
        min(renewedAt + idleTimeout, createdAt + absoluteTimeout)
    }

    /// Version 1; version 2 adds resource tokens at the end (written only when there are some, so
    /// sessions without them stay readable by earlier releases); version 3 ends with tagged fields
    /// (each at most once, in tag order): 1 resource tokens, 2 the DPoP key, 3 `acr`, 4 `auth_time`.
    /// The oldest version that holds a session is written.
    static let formatVersion: UInt8 = 1
    static let formatVersionWithResourceTokens: UInt8 = 2
    static let formatVersionTagged: UInt8 = 3

    /// The compact binary form that gets sealed.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 512 + claimsJSON.count)
        let tagged = dpopKey != nil || authenticationContext != nil || authTime != nil
        let version =
            tagged
            ? Session.formatVersionTagged
            : tokens.resourceTokens.isEmpty ? Session.formatVersion : Session.formatVersionWithResourceTokens
        writer.write(version)
        writer.write(issuer)
        writer.write(subject)
        writer.write(idpSessionID)
        writer.write(logoutID)
        writer.write(bytes: claimsJSON)
        writer.write(sessionState)
        writer.write(tokens.accessToken)
        writer.write(tokens.accessTokenExpiresAt)
        writer.write(tokens.tokenType)
        writer.write(tokens.refreshToken)
        writer.write(tokens.idToken)
        writer.write(createdAt)
        writer.write(renewedAt)
        if !tokens.resourceTokens.isEmpty {
            if tagged { writer.write(UInt8(1)) }
            writer.write(Int64(tokens.resourceTokens.count))
            for token in tokens.resourceTokens {
                writer.write(token.resource)
                writer.write(token.accessToken)
                writer.write(token.expiresAt)
                if tagged { writer.write(token.tokenType) }  // version 3 keeps each one's token_type
            }
        }
        if let dpopKey {
            writer.write(UInt8(2))
            writer.write(bytes: dpopKey.scalar)
        }
        if let authenticationContext {
            writer.write(UInt8(3))
            writer.write(authenticationContext)
        }
        if let authTime {
            writer.write(UInt8(4))
            writer.write(authTime)
        }
        return writer.bytes
    }

    /// Decodes ``encoded()``; nil for anything malformed or of another version.
    public init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard let version = reader.readByte(), (1...3).contains(version),
            let issuer = reader.readString(),
            let subject = reader.readString(),
            let idpSessionID = reader.readOptionalString(),
            let logoutID = reader.readString(),
            let claims = reader.readBytes(),
            let sessionState = reader.readOptionalString(),
            let accessToken = reader.readOptionalString(),
            let accessTokenExpiresAt = reader.readOptionalInt64(),
            let tokenType = reader.readOptionalString(),
            let refreshToken = reader.readOptionalString(),
            let idToken = reader.readOptionalString(),
            let createdAt = reader.readInt64(),
            let renewedAt = reader.readInt64()
        else { return nil }
        var tokens = TokenSet(
            accessToken: accessToken, accessTokenExpiresAt: accessTokenExpiresAt, tokenType: tokenType,
            refreshToken: refreshToken, idToken: idToken)
        func readResourceTokens(_ reader: inout ByteReader, withTypes: Bool) -> [ResourceToken]? {
            guard let count = reader.readInt64(), count > 0, count <= 64 else { return nil }
            var list: [ResourceToken] = []
            for _ in 0..<count {
                guard let resource = reader.readString(), let token = reader.readString(),
                    let expiresAt = reader.readOptionalInt64()
                else { return nil }
                var type: String?
                if withTypes {
                    guard let value = reader.readOptionalString() else { return nil }
                    type = value
                }
                list.append(
                    ResourceToken(resource: resource, accessToken: token, expiresAt: expiresAt, tokenType: type))
            }
            return list
        }
        var dpopKey: DPoPKey?
        var context: String?
        var authTime: UnixTime?
        if version == Session.formatVersionWithResourceTokens {
            guard let list = readResourceTokens(&reader, withTypes: false) else { return nil }
            tokens.resourceTokens = list
        } else if version == Session.formatVersionTagged {
            var lastTag: UInt8 = 0
            while !reader.isAtEnd {
                guard let tag = reader.readByte(), tag > lastTag else { return nil }
                lastTag = tag
                switch tag {
                case 1:
                    guard let list = readResourceTokens(&reader, withTypes: true) else { return nil }
                    tokens.resourceTokens = list
                case 2:
                    guard let scalar = reader.readBytes(), let key = try? DPoPKey(scalar: scalar) else { return nil }
                    dpopKey = key
                case 3:
                    guard let value = reader.readString() else { return nil }
                    context = value
                case 4:
                    guard let value = reader.readInt64() else { return nil }
                    authTime = value
                default:
                    return nil
                }
            }
        }
        guard reader.isAtEnd else { return nil }
        self.init(
            issuer: issuer, subject: subject, idpSessionID: idpSessionID, logoutID: logoutID, claimsJSON: claims,
            sessionState: sessionState, tokens: tokens, createdAt: createdAt, renewedAt: renewedAt)
        self.dpopKey = dpopKey
        self.authenticationContext = context
        self.authTime = authTime
    }
}
