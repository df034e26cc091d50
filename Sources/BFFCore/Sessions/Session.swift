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
    /// sessions without them stay readable by earlier releases).
    static let formatVersion: UInt8 = 1
    static let formatVersionWithResourceTokens: UInt8 = 2
    /// Version 3: version 2 (resource-token count always written) plus the DPoP key; written only
    /// for sessions that have one.
    static let formatVersionWithDPoP: UInt8 = 3

    /// The compact binary form that gets sealed.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 512 + claimsJSON.count)
        let version =
            dpopKey != nil
            ? Session.formatVersionWithDPoP
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
        if version != Session.formatVersion {
            writer.write(Int64(tokens.resourceTokens.count))
            for token in tokens.resourceTokens {
                writer.write(token.resource)
                writer.write(token.accessToken)
                writer.write(token.expiresAt)
            }
        }
        if let dpopKey { writer.write(bytes: dpopKey.scalar) }
        return writer.bytes
    }

    /// Decodes ``encoded()``; nil for anything malformed or of another version.
    public init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        let version = reader.readByte()
        guard
            version == Session.formatVersion || version == Session.formatVersionWithResourceTokens
                || version == Session.formatVersionWithDPoP,
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
        if version != Session.formatVersion {
            // Version 2 writes the list only when it has entries; version 3 always.
            guard let count = reader.readInt64(), count > (version == Session.formatVersionWithDPoP ? -1 : 0),
                count <= 64
            else { return nil }
            for _ in 0..<count {
                guard let resource = reader.readString(), let token = reader.readString(),
                    let expiresAt = reader.readOptionalInt64()
                else { return nil }
                tokens.resourceTokens.append(
                    ResourceToken(resource: resource, accessToken: token, expiresAt: expiresAt))
            }
        }
        var dpopKey: DPoPKey?
        if version == Session.formatVersionWithDPoP {
            guard let scalar = reader.readBytes(), let key = try? DPoPKey(scalar: scalar) else { return nil }
            dpopKey = key
        }
        guard reader.isAtEnd else { return nil }
        self.init(
            issuer: issuer, subject: subject, idpSessionID: idpSessionID, logoutID: logoutID, claimsJSON: claims,
            sessionState: sessionState, tokens: tokens, createdAt: createdAt, renewedAt: renewedAt)
        self.dpopKey = dpopKey
    }
}
