// XXH3 against the xxhsum command's output, zstd round trips and refusals.
import Testing
@testable import TensorFormats

@Test func xxh3MatchesXxhsum() {
    // `printf 'hello moeq' | xxhsum -H3` and `xxhsum -H3 /dev/null` (xxHash 0.8.1).
    #expect(ContentHash.hex(ContentHash.xxh3(Array("hello moeq".utf8))) == "ccbf2f25791ec142")
    #expect(ContentHash.hex(ContentHash.xxh3([])) == "2d06800538d394c2")
}

@Test func zstdRoundTripAndLimits() throws {
    let planes = (0..<100_000).map { UInt8(truncatingIfNeeded: ($0 / 1000) &* 3) }
    let frame = try Zstd.compress(planes)
    #expect(frame.count < planes.count / 20)
    #expect(try Zstd.decompress(frame, limit: 1 << 20) == planes)
    #expect(throws: ZstdError.self) { try Zstd.decompress(frame, limit: 1000) }
    #expect(throws: ZstdError.self) { try Zstd.decompress(Array(frame.dropLast(4)) + [0, 0, 0, 0], limit: 1 << 20) }
    #expect(throws: ZstdError.self) { try Zstd.decompress([1, 2, 3], limit: 1 << 20) }
}
