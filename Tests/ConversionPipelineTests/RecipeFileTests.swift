// Recipe files: typed rules by role / projection / layer range / tensor name on top of a named recipe, unknown keys
// refused with file and key named, and the stage pipeline that runs them.
import Foundation
import Testing
@testable import ConversionPipeline
import OutputPlanning
import ModelCatalog
import QuantKernels
import TensorFormats

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

private func recipe(_ text: String) throws -> RecipeFile {
    try RecipeFile(json: try JSONParser.parse(Array(text.utf8)), path: "test.json")
}

/// The FFN group a GGUF name belongs to, read off llama.cpp's naming (independent of the role tables under test).
private func groupByName(_ name: String) -> RoleCategory? {
    guard name.hasPrefix("blk."), name.contains(".ffn_"), !name.contains("ffn_gate_inp"), !name.contains("ffn_norm") else { return nil }
    if name.contains("_exps.") { return .routedExperts }
    if name.contains("_shexp.") { return .sharedExperts }
    return .denseFeedForward
}

@Test func recipeFileRulesSetTypesByRoleLayerAndName() throws {
    // deepseek_v3: layer 0 is dense, layers 1… have routed and shared experts.
    let file = try recipe(
        """
        {"format": "moeq recipe 1", "base": "Q4_K_M", "rules": [
          {"role": "shared_experts", "type": "Q8_0"},
          {"role": "routed_experts", "type": "Q4_K"},
          {"role": "dense_ffn", "layers": [0, 2], "type": "Q6_K"},
          {"role": "routed_experts", "projection": "down", "layers": [1, 1], "type": "Q5_K"},
          {"tensor": "blk.*.attn_kv_a_mqa.weight", "type": "F16"}]}
        """)
    let path = fixtures.appendingPathComponent("deepseek_v3-f32").path
    let plain = try GGUFConversion.plan(path: path, recipe: .q4_K_M)
    let ruled = try GGUFConversion.plan(path: path, recipe: .q4_K_M, rules: file)
    var checked = 0
    for (tensor, (before, after)) in zip(plain.tensors, zip(plain.layout.tensors, ruled.layout.tensors)) {
        let group = groupByName(tensor.name)
        let expected: QuantType
        if !tensor.quantizable {
            expected = before.type
        } else if tensor.name.hasSuffix("attn_kv_a_mqa.weight") {
            expected = .f16
        } else if group == .routedExperts && tensor.layer == 1 && tensor.name.contains("ffn_down") {
            expected = RecipeRules.fallback(.q5_K, width: tensor.rowWidth)
        } else if group == .routedExperts {
            expected = RecipeRules.fallback(.q4_K, width: tensor.rowWidth)
        } else if group == .sharedExperts {
            expected = .q8_0
        } else if group == .denseFeedForward {
            expected = RecipeRules.fallback(.q6_K, width: tensor.rowWidth)
        } else {
            expected = before.type
        }
        #expect(after.type == expected, "\(tensor.name): \(after.type.rawValue), expected \(expected.rawValue)")
        if group == .sharedExperts || group == .denseFeedForward || group == .routedExperts { checked += 1 }
    }
    #expect(checked >= 9)
    #expect(ruled.layout.fileSize != plain.layout.fileSize)
    // The plan's size is the written size, and the file is a GGUF we (and llama.cpp's reader rules) accept.
    let output = NSTemporaryDirectory() + "moeq-recipe-\(UUID().uuidString).gguf"
    defer { try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json") }
    _ = try GGUFConversion.run(ruled, output: output, threads: 2)
    #expect(try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int == ruled.layout.fileSize)
    #expect(try GGUFFile(path: output).tensors.map(\.type) == ruled.layout.tensors.map(\.type))
}

@Test func recipeFileRefusesUnknownKeysAndValues() throws {
    let cases: [(String, String)] = [
        (#"{"format": "moeq recipe 1", "base": "Q4_K_M", "rulez": []}"#, "rulez"),
        (#"{"format": "moeq recipe 1", "base": "Q4_K_M", "rules": [{"role": "experts", "type": "Q4_K"}]}"#, "rules[0].role"),
        (
            #"{"format": "moeq recipe 1", "base": "Q4_K_M", "rules": [{"role": "routed_experts", "type": "Q4_K", "layer": 3}]}"#,
            "rules[0].layer"
        ),
        (#"{"format": "moeq recipe 1", "base": "Q4_K_M", "rules": [{"type": "Q3_K_XL"}]}"#, "rules[0].type"),
        (#"{"format": "moeq recipe 1", "base": "Q4_K_M", "rules": [{"layers": [5, 2], "type": "Q8_0"}]}"#, "rules[0].layers"),
        (#"{"format": "moeq recipe 1", "base": "Q4_K_M", "rules": [{"projection": "dwon", "type": "Q8_0"}]}"#, "rules[0].projection"),
        (#"{"format": "moeq recipe 1", "base": "Q9"}"#, "base"),
        (#"{"base": "Q4_K_M"}"#, "format"),
        (#"{"format": "moeq recipe 1", "base": "Q4_K_M", "validate": {"text": "t.txt", "context": 5}}"#, "validate.context"),
    ]
    for (text, key) in cases {
        do {
            _ = try recipe(text)
            Issue.record("accepted: \(text)")
        } catch let error as RecipeFileError {
            #expect(String(describing: error).hasPrefix("test.json: \(key):"), "\(error)")
        }
    }
}

@Test func pipelineDryRunPlansEveryStageAndChecksNeeds() throws {
    let output = NSTemporaryDirectory() + "moeq-pipeline-\(UUID().uuidString).gguf"
    let file = try recipe(
        """
        {"format": "moeq recipe 1", "base": "Q8_0", "source": "\(fixtures.appendingPathComponent("mixtral-f32").path)",
         "output": "\(output)",
         "rules": [{"role": "routed_experts", "type": "Q4_0"}]}
        """)
    let stages = try StageRegistry.pipeline(for: file)
    #expect(stages.map(\.name) == ["source", "decode", "repack-experts", "quantize", "write", "verify", "report"])
    let context = PipelineContext(recipe: file, threads: 2)
    try StageRegistry.execute(stages, context: context, dryRun: true)
    #expect(!FileManager.default.fileExists(atPath: output))
    let planned = try #require(context.report.first { $0.stage == "write" }?.result["bytes"]?.intValue)
    #expect(planned == context.plan?.layout.fileSize)
    #expect(context.report.first { $0.stage == "quantize" }?.result["types"]?["Q4_0"] != nil)
    // Without an output the write stage's need is unmet: refused before anything runs.
    let noOutput = try recipe(#"{"format": "moeq recipe 1", "base": "Q8_0", "source": "x"}"#)
    #expect(throws: PipelineError.self) {
        try StageRegistry.execute(
            try StageRegistry.pipeline(for: noOutput), context: PipelineContext(recipe: noOutput, threads: 1), dryRun: true)
    }
}

/// A YAML recipe (validation/recipes/deepseek-custom.yaml, the formats/recipe.md example) gives the same types for
/// every tensor as the same recipe written as JSON (PyYAML's reading of it, the .yaml.json beside it).
@Test func yamlRecipeEqualsItsJSONForm() throws {
    let recipes = fixtures.deletingLastPathComponent().appendingPathComponent("recipes")
    let yaml = try RecipeFile(path: recipes.appendingPathComponent("deepseek-custom.yaml").path)
    let json = try RecipeFile(
        json: try JSONParser.parse([UInt8](try Data(contentsOf: recipes.appendingPathComponent("deepseek-custom.yaml.json")))),
        path: "x.json")
    #expect(yaml.base == json.base && yaml.rules == json.rules && yaml.rules.count == 6)
    #expect(yaml.source == "/models/DeepSeek-V3" && yaml.validate?.context == 512 && yaml.validate?.chunks == 40)
    let path = fixtures.appendingPathComponent("deepseek_v3-f32").path
    let a = try GGUFConversion.plan(path: path, recipe: yaml.base, rules: yaml)
    let b = try GGUFConversion.plan(path: path, recipe: json.base, rules: json)
    #expect(a.layout.tensors.map(\.type) == b.layout.tensors.map(\.type))
    #expect(a.layout.tensors.map(\.type) != (try GGUFConversion.plan(path: path, recipe: .q4_K_M)).layout.tensors.map(\.type))
    // An unknown key is refused in YAML as in JSON, naming the key.
    let bad = NSTemporaryDirectory() + "moeq-bad-\(UUID().uuidString).yaml"
    defer { try? FileManager.default.removeItem(atPath: bad) }
    try "format: moeq recipe 1\nbase: Q4_K_M\nrulez: []\n".write(toFile: bad, atomically: true, encoding: .utf8)
    #expect(throws: RecipeFileError.self) { try RecipeFile(path: bad) }
    do { _ = try RecipeFile(path: bad) } catch { #expect("\(error)".contains("rulez")) }
}
