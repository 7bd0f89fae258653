// One-pass conversion from every source encoding: FP8 block and compressed-tensors INT4 sources decode
// exactly into an F32 GGUF, and INT4-NATIVE carries the INT4 grid into Q4_0 without changing a value.
import Foundation
import Testing
@testable import ConversionPipeline
import OutputPlanning
import ModelCatalog
import QuantKernels
import TensorFormats

private func scratch() throws -> String {
    let path = NSTemporaryDirectory() + "moeq-src-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Test(arguments: [(SyntheticDType.fp8, RecipeName.f32), (.int4, .f32), (.int4, .int4Native), (.bf16, .f32)])
func convertedExpertsEqualTheSourceDecode(dtype: SyntheticDType, recipe: RecipeName) throws {
    let directory = try scratch()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var options = SyntheticOptions(preset: try #require(ModelPresets.named("tiny", architecture: .deepseekV3)), dtype: dtype)
    options.seed = 5
    _ = try SyntheticCheckpoint.write(options, to: directory + "/src")
    let plan = try GGUFConversion.plan(path: directory + "/src", recipe: recipe)
    #expect(plan.warnings.allSatisfy { !$0.contains("F16 cannot hold") })
    _ = try GGUFConversion.run(plan, output: directory + "/out.gguf", threads: 2)
    let file = try GGUFFile(path: directory + "/out.gguf")
    let spec = plan.spec
    let resolver = WeightResolver(checkpoint: try Checkpoint(path: directory + "/src"), quantization: spec.quantization)
    let down = try #require(file.tensor(named: "blk.1.ffn_down_exps.weight"))
    #expect(down.type == (recipe == .int4Native && dtype == .int4 ? .q4_0 : .f32))
    let values = try file.dequantized(down)
    let perExpert = spec.hiddenSize * spec.expertIntermediateSize
    for expert in [0, 3, spec.routedExpertCount - 1] {
        let source = try resolver.weight(named: "model.layers.1.mlp.experts.\(expert).down_proj.weight").decodeAll()
        #expect(Array(values[(expert * perExpert)..<((expert + 1) * perExpert)]) == source, "expert \(expert)")
    }
    // Attention (FP8 / BF16 sources) decodes into F32 exactly too; with INT4-NATIVE it is Q8_0.
    let attention = try #require(file.tensor(named: "blk.1.attn_q_b.weight"))
    let attentionSource = try resolver.weight(named: "model.layers.1.self_attn.q_b_proj.weight").decodeAll()
    if attention.type == .f32 { #expect(try file.dequantized(attention) == attentionSource) } else { #expect(attention.type == .q8_0) }
}

/// --format safetensors: an FP8-block (and an INT4) checkpoint becomes plain BF16 safetensors whose every tensor
/// equals the source's dequantized values rounded to BF16; F32 tensors stay F32; config.json loses
/// quantization_config; sharding writes the index.
@Test(arguments: [SyntheticDType.fp8, .int4])
func safetensorsExportDequantizesToBF16(dtype: SyntheticDType) throws {
    let work = try scratch()
    defer { try? FileManager.default.removeItem(atPath: work) }
    let source = work + "/src", output = work + "/out"
    var options = SyntheticOptions(preset: try #require(ModelPresets.named("tiny", architecture: .deepseekV3)), dtype: dtype)
    options.seed = 5
    _ = try SyntheticCheckpoint.write(options, to: source)
    let summary = try SafetensorsExport.run(source: source, output: output, recipe: .bf16, maxShardBytes: 300_000, threads: 2)
    #expect(summary.files.count > 1)
    let exported = try Checkpoint(path: output)
    #expect(exported.indexPath != nil)
    let config = try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: output + "/config.json"))))
    #expect(config["quantization_config"] == nil && config["model_type"]?.stringValue == "deepseek_v3")
    let original = try Checkpoint(path: source)
    let spec = try ModelSpec(configFile: source + "/config.json")
    let resolver = WeightResolver(checkpoint: original, quantization: spec.quantization)
    let weights = try resolver.allWeights()
    #expect(exported.tensors.count == weights.count)
    var quantizedSeen = 0
    for weight in weights {
        let location = try #require(exported.location(of: weight.name), "\(weight.name) missing")
        let values = try WeightResolver(checkpoint: exported, quantization: .none).weight(named: weight.name).decodeAll()
        let expected = try weight.decodeAll()
        if case .plain(let l) = weight.encoding, l.info.dtype == .f32 {
            #expect(location.info.dtype == .f32 && values == expected)
        } else {
            #expect(location.info.dtype == .bf16)
            #expect(values == expected.map { BFloat16.toFloat(BFloat16.fromFloat($0)) }, "\(weight.name)")
            if case .plain = weight.encoding {} else { quantizedSeen += 1 }
        }
    }
    #expect(quantizedSeen > 0)
}
