import Testing

@testable import BFFCore

/// `ByteKey`, the dictionary key of the per-call session lookups: equal exactly when the bytes
/// are, whatever storage holds them.
@Suite("Byte keys")
struct ByteKeyTests {
    @Test func equalExactlyWhenTheBytesAre() {
        let bytes: [UInt8] = Array(0..<48)
        let copy = Array(bytes[...])  // separate storage, same bytes
        #expect(ByteKey(bytes) == ByteKey(copy) && ByteKey(bytes).hashValue == ByteKey(copy).hashValue)
        #expect(ByteKey([]) == ByteKey([]))
        #expect(ByteKey([1]) != ByteKey([1, 0]), "a prefix is another key")
        #expect(ByteKey([0]) != ByteKey([]))
        var changed = bytes
        changed[47] ^= 1
        #expect(ByteKey(bytes) != ByteKey(changed), "the last byte counts")
        changed = bytes
        changed[0] ^= 0x80
        #expect(ByteKey(bytes) != ByteKey(changed), "the first byte counts")

        var map: [ByteKey: Int] = [ByteKey(bytes): 1, ByteKey([1]): 2, ByteKey([]): 3]
        #expect(map[ByteKey(copy)] == 1 && map[ByteKey([1, 0])] == nil && map[ByteKey([])] == 3)
        map[ByteKey(copy)] = nil
        #expect(map.count == 2)
    }
}
