import Crypto

/// A pending login, sealed into its own short-lived `SameSite=Lax` cookie (SPEC §6).
public struct LoginTransaction: Sendable, Equatable {
    /// The `state` sent to the IdP.
    public var state: String
    /// The `nonce` expected in the ID token.
    public var nonce: String
    /// The PKCE code verifier (RFC 7636), 43+ characters.
    public var codeVerifier: String
    /// The issuer the request went to (checked against RFC 9207 `iss`).
    public var issuer: String
    /// Where to go after login (already validated).
    public var returnURL: String
    /// The `prompt` sent, if any (`none` selects the silent-login answer).
    public var prompt: String?
    /// When it was created.
    public var createdAt: UnixTime
    /// The session's DPoP key, made before the authorization request (its thumbprint goes out as
    /// `dpop_jkt`); nil without DPoP.
    public var dpopKey: DPoPKey?
    /// A `prompt=none` login started by a top-level navigation (`Sec-Fetch-Dest: document`): the
    /// callback answers with a redirect to ``returnURL`` and `bff-login=success|none`, never a page.
    public var topLevelSilent = false
    /// Step-up: the `acr_values` asked for; the ID token's `acr` must be one of them.
    public var acrValues: [String] = []
    /// Step-up: the `max_age` asked for; the ID token's `auth_time` must be at most this old.
    public var maxAge: Int64?

    /// Lifetime of a login transaction, 10 minutes.
    public static let lifetime: Int64 = 600
    /// Most pending logins per browser; the oldest is evicted.
    public static let maximumPending = 5

    /// Creates a transaction.
    public init(
        state: String, nonce: String, codeVerifier: String, issuer: String, returnURL: String, prompt: String?,
        createdAt: UnixTime
    ) {
        self.state = state
        self.nonce = nonce
        self.codeVerifier = codeVerifier
        self.issuer = issuer
        self.returnURL = returnURL
        self.prompt = prompt
        self.createdAt = createdAt
    }

    /// Creates a transaction with fresh random state, nonce and verifier.
    public static func start(
        issuer: String, returnURL: String, prompt: String?, now: UnixTime, random: any SecureRandom,
        dpop: Bool = false
    ) -> LoginTransaction {
        var transaction = LoginTransaction(
            state: random.token(byteCount: 32), nonce: random.token(byteCount: 32),
            codeVerifier: random.token(byteCount: 48), issuer: issuer, returnURL: returnURL, prompt: prompt,
            createdAt: now)
        if dpop { transaction.dpopKey = DPoPKey.generate() }
        return transaction
    }

    /// The S256 code challenge of ``codeVerifier``.
    public var codeChallenge: String {
        Base64URL.encode(Array(SHA256.hash(data: Array(codeVerifier.utf8))))
    }

    /// The short id in the cookie name, derived from the state so the callback can find it.
    public static func cookieID(forState state: String) -> String {
        String(Base64URL.encode(Array(SHA256.hash(data: Array(state.utf8)))).prefix(12))
    }

    /// Whether it has outlived ``lifetime`` at `now`.
    public func isExpired(now: UnixTime) -> Bool {
        now >= createdAt + LoginTransaction.lifetime || now < createdAt - 300
    }

    /// Binary form for sealing. Version 2 adds the DPoP key at the end; version 3 a flags byte
    /// (top-level silent login, has a key) and then the key. The oldest version that holds the
    /// transaction is written, so transactions without the new parts stay readable by earlier releases.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        let flagged = topLevelSilent || !acrValues.isEmpty || maxAge != nil
        let version: UInt8 = flagged ? 3 : dpopKey == nil ? 1 : 2
        writer.write(version)
        writer.write(state)
        writer.write(nonce)
        writer.write(codeVerifier)
        writer.write(issuer)
        writer.write(returnURL)
        writer.write(prompt)
        writer.write(createdAt)
        if version == 3 {
            writer.write(
                UInt8(
                    (topLevelSilent ? 1 : 0) | (dpopKey == nil ? 0 : 2) | (acrValues.isEmpty ? 0 : 4)
                        | (maxAge == nil ? 0 : 8)))
        }
        if let dpopKey { writer.write(bytes: dpopKey.scalar) }
        if !acrValues.isEmpty {
            writer.write(UInt8(acrValues.count))
            for value in acrValues { writer.write(value) }
        }
        if let maxAge { writer.write(maxAge) }
        return writer.bytes
    }

    /// Decodes ``encoded()``.
    public init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard let version = reader.readByte(), (1...3).contains(version), let state = reader.readString(),
            let nonce = reader.readString(), let verifier = reader.readString(), let issuer = reader.readString(),
            let returnURL = reader.readString(), let prompt = reader.readOptionalString(),
            let createdAt = reader.readInt64()
        else { return nil }
        var flags: UInt8 = version == 2 ? 2 : 0
        if version == 3 {
            guard let value = reader.readByte(), value & ~15 == 0 else { return nil }
            flags = value
        }
        var dpopKey: DPoPKey?
        if flags & 2 != 0 {
            guard let scalar = reader.readBytes(), let key = try? DPoPKey(scalar: scalar) else { return nil }
            dpopKey = key
        }
        var acrValues: [String] = []
        if flags & 4 != 0 {
            guard let count = reader.readByte(), (1...8).contains(count) else { return nil }
            for _ in 0..<count {
                guard let value = reader.readString() else { return nil }
                acrValues.append(value)
            }
        }
        var maxAge: Int64?
        if flags & 8 != 0 {
            guard let value = reader.readInt64() else { return nil }
            maxAge = value
        }
        guard reader.isAtEnd else { return nil }
        self.init(
            state: state, nonce: nonce, codeVerifier: verifier, issuer: issuer, returnURL: returnURL, prompt: prompt,
            createdAt: createdAt)
        self.dpopKey = dpopKey
        self.topLevelSilent = flags & 1 != 0
        self.acrValues = acrValues
        self.maxAge = maxAge
    }
}

/// A pending RP-initiated logout: the `state` sent to the end-session endpoint and where to go after.
public struct LogoutTransaction: Sendable, Equatable {
    /// The `state` sent to the IdP.
    public var state: String
    /// Where to go after the IdP sends the browser back.
    public var returnURL: String
    /// When it was created.
    public var createdAt: UnixTime

    /// Creates a logout transaction.
    public init(state: String, returnURL: String, createdAt: UnixTime) {
        self.state = state
        self.returnURL = returnURL
        self.createdAt = createdAt
    }

    /// Binary form for sealing.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.write(UInt8(1))
        writer.write(state)
        writer.write(returnURL)
        writer.write(createdAt)
        return writer.bytes
    }

    /// Decodes ``encoded()``.
    public init?(encoded bytes: [UInt8]) {
        var reader = ByteReader(bytes)
        guard reader.readByte() == 1, let state = reader.readString(), let returnURL = reader.readString(),
            let createdAt = reader.readInt64(), reader.isAtEnd
        else { return nil }
        self.init(state: state, returnURL: returnURL, createdAt: createdAt)
    }
}
