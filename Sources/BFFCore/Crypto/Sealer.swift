import Crypto

/// AES-256-GCM sealing of small values (cookies, tickets, sessions at rest).
///
/// Layout of a sealed value (before base64url): `0x01` (format version) · key-id length (1 byte) ·
/// key id · 12-byte nonce · ciphertext · 16-byte tag. The authenticated data is the purpose name,
/// a zero byte, the binding string (normally the cookie name) and the header bytes, so a value cut
/// from one cookie cannot be replayed as another. A sealer of one frontend of several (a non-empty
/// `partition`) prefixes that with `0xFF`, the frontend's name and a zero byte: nothing one
/// frontend sealed opens on another.
public struct Sealer: Sendable {
    /// The key ring used to seal (first key) and open (any key).
    public let keyRing: KeyRing
    /// The frontend whose values this sealer seals and opens; empty for a single-frontend BFF.
    public let partition: String
    let random: any SecureRandom

    static let version: UInt8 = 1

    /// Creates a sealer over `keyRing` for the frontend named `partition` (empty: the only one).
    public init(keyRing: KeyRing, random: any SecureRandom = SystemSecureRandom(), partition: String = "") {
        self.keyRing = keyRing
        self.random = random
        self.partition = partition
    }

    /// Seals `plaintext` for `purpose`, bound to `binding` (for cookies, the cookie name).
    public func seal(_ plaintext: some Collection<UInt8>, purpose: SealingPurpose, binding: String) throws -> [UInt8] {
        let key = keyRing.derived[0]
        var header: [UInt8] = [Sealer.version, UInt8(key.id.count)]
        header.append(contentsOf: key.id)
        let nonce = try AES.GCM.Nonce(data: random.bytes(12))
        let aad = authenticatedData(purpose: purpose, binding: binding, header: header)
        let box = try AES.GCM.seal(Array(plaintext), using: key.keys[purpose.index], nonce: nonce, authenticating: aad)
        var output = header
        output.reserveCapacity(header.count + 12 + plaintext.count + 16)
        output.append(contentsOf: box.nonce)
        output.append(contentsOf: box.ciphertext)
        output.append(contentsOf: box.tag)
        return output
    }

    /// Opens a sealed value; nil when it is malformed, tampered with, sealed for another purpose or
    /// binding, or sealed with a key no longer in the ring. Never throws: every failure means
    /// "no value".
    public func open(_ sealed: some Collection<UInt8>, purpose: SealingPurpose, binding: String) -> [UInt8]? {
        let bytes = Array(sealed)
        guard bytes.count >= 2 + 1 + 12 + 16, bytes[0] == Sealer.version else { return nil }
        let idLength = Int(bytes[1])
        let headerLength = 2 + idLength
        guard idLength > 0, bytes.count >= headerLength + 12 + 16 else { return nil }
        let id = bytes[2..<headerLength]
        guard let key = keyRing.derived.first(where: { $0.id.elementsEqual(id) }) else { return nil }
        let header = bytes[0..<headerLength]
        let aad = authenticatedData(purpose: purpose, binding: binding, header: header)
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: bytes[headerLength..<(headerLength + 12)]),
                ciphertext: bytes[(headerLength + 12)..<(bytes.count - 16)],
                tag: bytes[(bytes.count - 16)...]
            )
            return Array(try AES.GCM.open(box, using: key.keys[purpose.index], authenticating: aad))
        } catch {
            return nil
        }
    }

    /// Seals and base64url-encodes, for a cookie value.
    public func sealToString(_ plaintext: some Collection<UInt8>, purpose: SealingPurpose, binding: String) throws
        -> String
    {
        Base64URL.encode(try seal(plaintext, purpose: purpose, binding: binding))
    }

    /// Decodes base64url and opens; nil on any failure.
    public func open(base64URL value: some Collection<UInt8>, purpose: SealingPurpose, binding: String) -> [UInt8]? {
        guard let sealed = Base64URL.decode(value) else { return nil }
        return open(sealed, purpose: purpose, binding: binding)
    }

    func authenticatedData(purpose: SealingPurpose, binding: String, header: some Collection<UInt8>) -> [UInt8] {
        var aad: [UInt8] = []
        if !partition.isEmpty {
            // 0xFF never occurs in UTF-8: a partitioned value never reads as an unpartitioned one.
            aad.append(0xFF)
            aad.append(contentsOf: partition.utf8)
            aad.append(0)
        }
        aad.append(contentsOf: purpose.name.utf8)
        aad.append(0)
        aad.append(contentsOf: binding.utf8)
        aad.append(0)
        aad.append(contentsOf: header)
        return aad
    }
}
