import BFFCore
import Testing

@Suite("Sealer and key ring")
struct SealerTests {
    static let key1 = KeyRing.Key(id: "k1", secret: Array(repeating: 1, count: 32))
    static let key2 = KeyRing.Key(id: "k2", secret: Array(repeating: 2, count: 32))

    func sealer(_ keys: [KeyRing.Key]) throws -> Sealer { Sealer(keyRing: try KeyRing(keys: keys)) }

    @Test func roundTrip() throws {
        let sealer = try sealer([Self.key1])
        let sealed = try sealer.sealToString(Array("hello".utf8), purpose: .sessionCookie, binding: "c")
        #expect(
            sealer.open(base64URL: Array(sealed.utf8), purpose: .sessionCookie, binding: "c") == Array("hello".utf8))
    }

    @Test func sealingIsRandomized() throws {
        let sealer = try sealer([Self.key1])
        let a = try sealer.sealToString([1, 2, 3], purpose: .sessionCookie, binding: "c")
        let b = try sealer.sealToString([1, 2, 3], purpose: .sessionCookie, binding: "c")
        #expect(a != b)
    }

    @Test func everyFlippedByteIsRejected() throws {
        let sealer = try sealer([Self.key1])
        let sealed = try sealer.seal(Array("secret session".utf8), purpose: .sessionCookie, binding: "c")
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(sealer.open(tampered, purpose: .sessionCookie, binding: "c") == nil, "byte \(index)")
        }
    }

    @Test func truncatedAndExtendedValuesAreRejected() throws {
        let sealer = try sealer([Self.key1])
        let sealed = try sealer.seal([9, 9, 9], purpose: .sessionCookie, binding: "c")
        for length in 0..<sealed.count {
            #expect(sealer.open(Array(sealed.prefix(length)), purpose: .sessionCookie, binding: "c") == nil)
        }
        #expect(sealer.open(sealed + [0], purpose: .sessionCookie, binding: "c") == nil)
    }

    @Test func otherPurposeIsRejected() throws {
        let sealer = try sealer([Self.key1])
        let sealed = try sealer.seal([1], purpose: .loginTransaction, binding: "c")
        #expect(sealer.open(sealed, purpose: .sessionCookie, binding: "c") == nil)
        #expect(sealer.open(sealed, purpose: .sessionTicket, binding: "c") == nil)
    }

    @Test func otherBindingIsRejected() throws {
        let sealer = try sealer([Self.key1])
        let sealed = try sealer.seal([1], purpose: .sessionCookie, binding: "__Host-a")
        #expect(sealer.open(sealed, purpose: .sessionCookie, binding: "__Host-b") == nil)
    }

    @Test func wrongKeyIsRejected() throws {
        let sealed = try sealer([Self.key1]).seal([1], purpose: .sessionCookie, binding: "c")
        let impostor = try sealer([KeyRing.Key(id: "k1", secret: Array(repeating: 7, count: 32))])
        #expect(impostor.open(sealed, purpose: .sessionCookie, binding: "c") == nil)
    }

    @Test func rotationKeepsOldValuesReadable() throws {
        let old = try sealer([Self.key1]).seal([42], purpose: .sessionCookie, binding: "c")
        let rotated = try sealer([Self.key2, Self.key1])
        #expect(rotated.open(old, purpose: .sessionCookie, binding: "c") == [42])
        let fresh = try rotated.seal([43], purpose: .sessionCookie, binding: "c")
        #expect(try sealer([Self.key2]).open(fresh, purpose: .sessionCookie, binding: "c") == [43])
    }

    @Test func removedKeyEndsItsValues() throws {
        let old = try sealer([Self.key1]).seal([42], purpose: .sessionCookie, binding: "c")
        #expect(try sealer([Self.key2]).open(old, purpose: .sessionCookie, binding: "c") == nil)
    }

    @Test(arguments: ["", "!!!", "AQ", String(repeating: "A", count: 5000), "AQRrMQ==", "%%%%", "\u{0}"])
    func garbageIsRejected(_ value: String) throws {
        #expect(
            try sealer([Self.key1]).open(base64URL: Array(value.utf8), purpose: .sessionCookie, binding: "c") == nil)
    }

    @Test func keyRingRejectsBadKeys() {
        #expect(throws: KeyRingError.self) { try KeyRing(keys: []) }
        #expect(throws: KeyRingError.self) { try KeyRing(keys: [KeyRing.Key(id: "k", secret: [1, 2, 3])]) }
        #expect(throws: KeyRingError.self) {
            try KeyRing(keys: [KeyRing.Key(id: "bad id", secret: Array(repeating: 0, count: 32))])
        }
        #expect(throws: KeyRingError.self) { try KeyRing(keys: [Self.key1, Self.key1]) }
    }

    /// One frontend's sealed values (same keys, same purpose and binding) never open on another,
    /// nor on an unpartitioned sealer, and the reverse.
    @Test func aPartitionedValueOpensOnlyInItsPartition() throws {
        let ring = try KeyRing(keys: [Self.key1])
        let sealers = ["", "shop", "admin", "shop2"].map { Sealer(keyRing: ring, partition: $0) }
        for (index, sealer) in sealers.enumerated() {
            let sealed = try sealer.seal([7, 8, 9], purpose: .sessionTicket, binding: "__Host-bff")
            for (other, opener) in sealers.enumerated() {
                let opened = opener.open(sealed, purpose: .sessionTicket, binding: "__Host-bff")
                #expect((opened == [7, 8, 9]) == (index == other), "sealed in \(index), opened in \(other)")
            }
        }
    }

    @Test func base64URLRoundTrip() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(($0 * 37 + 11) & 0xFF) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("ab+c") == nil)
    }
}
