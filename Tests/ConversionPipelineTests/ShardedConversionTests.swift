// Scale-out: three shards converted separately and merged give the single-machine GGUF byte for byte, manifest
// included; incomplete or damaged part sets are refused.
import Foundation
import Testing
@testable import ConversionPipeline
import OutputPlanning
import TensorFormats

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

@Test(arguments: [("deepseek_v3-bf16-sharded", RecipeName.q4_K_M), ("mixtral-f32", .q8_0), ("trained-qwen3_moe_wide", .q6_K)])
func shardsMergeToTheSingleMachineOutput(fixture: String, recipe: RecipeName) throws {
    let directory = NSTemporaryDirectory() + "moeq-shard-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let plan = try GGUFConversion.plan(path: fixtures.appendingPathComponent(fixture).path, recipe: recipe)
    let single = directory + "/single.gguf", merged = directory + "/merged.gguf"
    _ = try GGUFConversion.run(plan, output: single, threads: 2)

    let owners = ConversionPlan.shardAssignment(plan.layout, shards: 3)
    #expect(Set(owners) == [1, 2, 3] && owners == owners.sorted())  // contiguous runs, none empty
    var parts: [String] = []
    var tensors = 0
    for k in 1...3 {
        let part = try ShardedConversion.run(plan, output: merged, shard: k, of: 3, threads: 2)
        parts.append(part.path)
        tensors += part.tensors
        #expect(!FileManager.default.fileExists(atPath: merged))
    }
    #expect(tensors == plan.tensors.count)
    // Missing a part, or the same part twice: refused, nothing written.
    #expect(throws: ShardError.self) { _ = try ShardedConversion.merge(parts: Array(parts.prefix(2)), output: merged) }
    #expect(throws: ShardError.self) { _ = try ShardedConversion.merge(parts: [parts[0], parts[1], parts[1]], output: merged) }
    #expect(!FileManager.default.fileExists(atPath: merged))

    let result = try ShardedConversion.merge(parts: parts.reversed(), output: merged)
    #expect(result.tensors == plan.tensors.count)
    #expect(try Data(contentsOf: URL(fileURLWithPath: merged)) == Data(contentsOf: URL(fileURLWithPath: single)))
    #expect(try Data(contentsOf: URL(fileURLWithPath: merged + ".manifest.json")).count > 0)
    #expect(
        try String(contentsOfFile: merged + ".manifest.json", encoding: .utf8).replacingOccurrences(of: "merged.gguf", with: "single.gguf")
            == String(contentsOfFile: single + ".manifest.json", encoding: .utf8))

    // One flipped byte in a part's tensor data: the merge names the part and the tensor and leaves no output.
    try FileManager.default.removeItem(atPath: merged)
    var damaged = [UInt8](try Data(contentsOf: URL(fileURLWithPath: parts[1])))
    damaged[damaged.count - 1] ^= 0x01
    try Data(damaged).write(to: URL(fileURLWithPath: parts[1]))
    do {
        _ = try ShardedConversion.merge(parts: parts, output: merged)
        Issue.record("a damaged part was merged")
    } catch let error as ShardError {
        #expect(String(describing: error).contains(parts[1]))
    }
    #expect(!FileManager.default.fileExists(atPath: merged))
}
