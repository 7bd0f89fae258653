// `moeq validate --shard k/n` parts and `--merge`: the merged report is the single-machine report, bit for bit.
import Foundation
import Testing
@testable import ReferenceEngine
import ConversionPipeline
import OutputPlanning
import TensorFormats

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

/// The mixtral fixture, its Q4_0 GGUF in a temporary directory (removed by the caller) and seven 32-token windows.
private func q4_0Setup(
    _ label: String
) throws -> (
    directory: String, work: String, quantPath: String, quant: WeightProvider, base: CheckpointWeights, windows: [[Int]]
) {
    let directory = fixtures.appendingPathComponent("mixtral-f32").path
    let work = NSTemporaryDirectory() + "moeq-\(label)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    let quantPath = work + "/q4_0.gguf"
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .q4_0), output: quantPath, threads: 2)
    let quant = try ReferenceModel.weights(path: quantPath, configDirectory: directory)
    let tokens = (0..<(7 * 32)).map { ($0 * 41 + 5) % 400 + 3 }
    let windows = QuantValidation.windows(tokens: tokens, context: 32, maxChunks: nil, beginningOfSequence: 0)
    return (directory, work, quantPath, quant, try CheckpointWeights(path: directory), windows)
}

@Test func shardedValidationMergesToTheSingleRunReport() throws {
    let (directory, work, quantPath, quant, base, windows) = try q4_0Setup("parts")
    defer { try? FileManager.default.removeItem(atPath: work) }
    let single = try QuantValidation.run(quant: quant, base: .model(base), configDirectory: directory, windows: windows).report

    let n = 3
    var parts: [(path: String, part: ValidationPart)] = []
    for k in 0..<n {
        let range = ValidationPart.chunks(shard: k, of: n, total: windows.count)
        let scores = try QuantValidation.score(quant: quant, base: .model(base), windows: Array(windows[range]))
        let part = ValidationPart(
            shard: k, shards: n, firstChunk: range.lowerBound, totalChunks: windows.count, ctx: 32,
            windowsHash: QuantValidation.windowsHash(windows), arithmetic: "exact",
            quantFingerprint: try ModelFingerprint.of(quantPath), baseFingerprint: try ModelFingerprint.of(directory), scores: scores)
        let path = work + "/part\(k)"
        try part.write(to: path)
        let read = try ValidationPart.read(path: path)
        #expect(read == part)
        parts.append((path, read))
    }
    #expect(parts.map(\.part.scores.chunks) == [2, 2, 3])
    let merged = try QuantValidation.report(try ValidationPart.merge(parts.reversed()))
    #expect(merged.chunks == single.chunks && merged.positions == single.positions)
    #expect(merged.basePerplexity == single.basePerplexity && merged.quantPerplexity == single.quantPerplexity)
    #expect(merged.ratio == single.ratio && merged.ratioLow == single.ratioLow && merged.ratioHigh == single.ratioHigh)
    #expect(merged.meanKLD == single.meanKLD && merged.maxKLD == single.maxKLD && merged.p99KLD == single.p99KLD)
    #expect(merged.kldPercentiles.map(\.value) == single.kldPercentiles.map(\.value))
    #expect(merged.top1Agreement == single.top1Agreement && merged.rmsDeltaP == single.rmsDeltaP)
    #expect(single.meanKLD > 0 && single.top1Agreement < 1)  // Q4_0 differs from the base: the comparison is not vacuous

    // With the base from a base-logits record, each shard reads the record from its own first position on.
    let record = try #require(
        try QuantValidation.run(quant: quant, base: .model(base), configDirectory: directory, windows: windows, recordTopK: 8).record)
    let fromRecord = try QuantValidation.report(try QuantValidation.score(quant: quant, base: .record(record), windows: windows))
    var recordScores = QuantValidation.Scores()
    for k in 0..<n {
        let range = ValidationPart.chunks(shard: k, of: n, total: windows.count)
        let offset = windows[..<range.lowerBound].reduce(0) { $0 + $1.count - 1 - $1.count / 2 }
        recordScores.append(
            try QuantValidation.score(quant: quant, base: .record(record), windows: Array(windows[range]), recordOffset: offset))
    }
    let shardedRecord = try QuantValidation.report(recordScores)
    #expect(shardedRecord.meanKLD == fromRecord.meanKLD && shardedRecord.basePerplexity == fromRecord.basePerplexity)
    #expect(shardedRecord.top1Agreement == fromRecord.top1Agreement)
    #expect(abs(fromRecord.basePerplexity / single.basePerplexity - 1) < 1e-6)  // the record keeps f32 log-probabilities

    // Refused: a shard twice, a shard missing, a part of other windows, a damaged payload.
    #expect(throws: ValidationPartError.self) { _ = try ValidationPart.merge([parts[0], parts[0], parts[1], parts[2]]) }
    #expect(throws: ValidationPartError.self) { _ = try ValidationPart.merge([parts[0], parts[2]]) }
    var other = parts[1]
    other.part.windowsHash ^= 1
    #expect(throws: ValidationPartError.self) { _ = try ValidationPart.merge([parts[0], other, parts[2]]) }
    // A shard rerun on another quant (Q8_0 instead of Q4_0) is refused, though its text and chunks are the same.
    let otherQuant = work + "/q8_0.gguf"
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .q8_0), output: otherQuant, threads: 2)
    var rerun = parts[1]
    rerun.part.quantFingerprint = try ModelFingerprint.of(otherQuant)
    #expect(rerun.part.quantFingerprint != parts[1].part.quantFingerprint)
    #expect(throws: ValidationPartError.self) { _ = try ValidationPart.merge([parts[0], rerun, parts[2]]) }
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: parts[2].path)))
    bytes[bytes.count - 2] ^= 0x41
    try Data(bytes).write(to: URL(fileURLWithPath: parts[2].path))
    #expect(throws: ValidationPartError.self) { _ = try ValidationPart.read(path: parts[2].path) }
}

/// A head too large to keep decoded is multiplied once for a group of windows instead of once per window: the scores are
/// the per-window ones bit for bit, with the base model and with a base-logits record, in one group or several.
@Test func largeHeadsAreScoredInGroupsWithTheSameNumbers() throws {
    let (directory, work, _, quant, base, windows) = try q4_0Setup("head-groups")
    defer { try? FileManager.default.removeItem(atPath: work) }
    let perWindow = try QuantValidation.score(quant: quant, base: .model(base), windows: windows)
    #expect(perWindow.positions == 7 * 15 && perWindow.kld.contains { $0 > 0 })
    // Logits of 35 rows per group (two windows of 15 scored rows), and of every window at once.
    let rowBytes = 4 * base.spec.vocabularySize * 2
    for memory in [4 * rowBytes * 35, 1 << 30] {
        let grouped = try QuantValidation.score(quant: quant, base: .model(base), windows: windows, memory: memory, largeHeadBytes: 0)
        #expect(grouped == perWindow, "memory \(memory)")
    }
    let record = try #require(
        try QuantValidation.run(quant: quant, base: .model(base), configDirectory: directory, windows: windows, recordTopK: 8).record)
    let fromRecord = try QuantValidation.score(quant: quant, base: .record(record), windows: windows)
    let groupedRecord = try QuantValidation.score(
        quant: quant, base: .record(record), windows: windows, memory: 4 * rowBytes * 35 / 2, largeHeadBytes: 0)
    #expect(groupedRecord == fromRecord && fromRecord.kldFromRecord)
}
