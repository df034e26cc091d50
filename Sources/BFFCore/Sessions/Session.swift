/// A user's BFF session: who they are (ID-token claims), the tokens held for them, and its timing.
public struct Session: Sendable, Equatable {
    /// The IdP's issuer.
    public var issuer: String
    /// The `sub` claim.
    public var subject: String
    /// The IdP `sid` claim, when the IdP sends one.
    public var idpSessionID: String?
    /// The value the SPA must echo in `/bff/logout?sid=`: the IdP `sid` if present, else random.
    public var logoutID: String
    /// The ID-token (and userinfo) claims as a JSON object, UTF-8 bytes. Decoded only by `/bff/user`.
    public var claimsJSON: [UInt8]
    /// `session_state` from the authorization response, if any.
    public var sessionState: String?
    /// Tokens held server-side.
    public var tokens: TokenSet
    /// When the session was created.
    public var createdAt: UnixTime
    /// When it was last used in a sliding way.
    public var renewedAt: UnixTime
    /// The session's DPoP key (RFC 9449), when its tokens are sender-constrained.
    public var dpopKey: DPoPKey?
    /// The ID token's `acr` (step-up: routes may require one of a list).
    public var authenticationContext: String?
    /// The ID token's `auth_time` (step-up: routes may require a recent authentication).
    public var authTime: UnixTime?

    /// Creates a session.
    public init(
        issuer: String, subject: String, idpSessionID: String?, logoutID: String, claimsJSON: [UInt8],
        sessionState: String? = nil, tokens: TokenSet, createdAt: UnixTime, renewedAt: UnixTime
    ) {
        self.issuer = issuer
        self.subject = subject
        self.idpSessionID = idpSessionID
        self.logoutID = logoutID
        self.claimsJSON = claimsJSON
        self.sessionState = sessionState
        self.tokens = tokens
        self.createdAt = createdAt
        self.renewedAt = renewedAt
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
