// pack → unpack restores a checkpoint bit for bit, compresses BF16 better than 1:1, and refuses a damaged archive.
import Foundation
import Testing
@testable import TensorFormats

@Test func packRoundTripsAndDetectsDamage() throws {
    let work = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: work) }
    let source = fixtures.appendingPathComponent("deepseek_v3-bf16-sharded").path
    let summary = try BytePlanePack.pack(directory: source, output: work + "/archive")
    #expect(summary.ratio > 1.2, "BF16 byte planes should compress, got \(summary.ratio)")
    _ = try BytePlanePack.unpack(input: work + "/archive", directory: work + "/restored")
    for name in try FileManager.default.contentsOfDirectory(atPath: source) {
        #expect(FileManager.default.contentsEqual(atPath: source + "/" + name, andPath: work + "/restored/" + name), "\(name)")
    }
    // Flip one byte inside the first frame of a shard's tensor data: unpacking must fail, not restore wrong bytes.
    let framesPath = work + "/archive/" + BytePlanePack.dataName
    var frames = try Data(contentsOf: URL(fileURLWithPath: framesPath))
    frames[frames.count / 2] ^= 0x40
    try frames.write(to: URL(fileURLWithPath: framesPath))
    #expect(throws: (any Error).self) { _ = try BytePlanePack.unpack(input: work + "/archive", directory: work + "/again") }
}

@Test func planesSplitElementsByByte() {
    let bytes: [UInt8] = [1, 2, 3, 4, 5, 6]
    bytes.withUnsafeBytes { raw in
        #expect(BytePlanePack.extractPlane(raw, plane: 0, width: 2) == [1, 3, 5])
        #expect(BytePlanePack.extractPlane(raw, plane: 1, width: 2) == [2, 4, 6])
        #expect(BytePlanePack.extractPlane(raw, plane: 0, width: 1) == bytes)
    }
}
