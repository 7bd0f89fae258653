// XXH3 against the xxhsum command's output, zstd round trips and refusals.
import Foundation
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

/// O_DIRECT runs in StagedFile: sequential writes at odd offsets and sizes, jumps back and forth, a sync in the
/// middle — the file holds exactly what was written, as with plain buffered writes.
@Test func directWritesLeaveTheSameBytesAsBufferedWrites() throws {
    let size = 3 * (8 << 20) + 12_345
    var expected = [UInt8](repeating: 0, count: size)
    var generator = UInt64(0x9E3779B97F4A7C15)
    func next() -> UInt64 { generator ^= generator << 13; generator ^= generator >> 7; generator ^= generator << 17; return generator }
    let path = NSTemporaryDirectory() + "moeq-direct-\(UUID().uuidString).bin"
    defer { try? FileManager.default.removeItem(atPath: path) }
    let file = try StagedFile(path: path, size: size)
    file.enableDirectWrites(bufferBytes: 1 << 20)
    var offset = 37
    var writes: [(Int, Int)] = []
    while offset < size - 1 {
        // Every fifth write is tiny: it can end inside the first partial block of a run.
        let length = min(writes.count % 5 == 4 ? Int(next() % 100) + 1 : Int(next() % 300_000) + 1, size - offset)
        writes.append((offset, length))
        offset += length
    }
    // Mostly in order, with two writes moved out of order and a sync after a third of them.
    writes.swapAt(5, 9)
    for (i, (start, length)) in writes.enumerated() {
        let chunk = (0..<length).map { _ in UInt8(truncatingIfNeeded: next()) }
        expected.replaceSubrange(start..<(start + length), with: chunk)
        try chunk.withUnsafeBytes { try file.write($0, at: start) }
        if i == writes.count / 3 { try file.syncData() }
    }
    try file.finish()
    #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == expected)
}
