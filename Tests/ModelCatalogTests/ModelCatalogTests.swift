// Model specs from both config layouts, tensor roles, and parameter counts equal to PyTorch's.
import Foundation
import Testing
@testable import ModelCatalog
import TensorFormats

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

private let checkpointFixtures = [
    "deepseek_v3-f32", "deepseek_v3-bf16-sharded", "deepseek_v3-bf16-released",
    "qwen3_moe-f32", "qwen3_moe-bf16-sharded", "mixtral-f32", "mixtral-bf16-sharded", "glm4_moe-f32", "minimax_m2-f32",
    "gpt_oss-f32", "gpt_oss-mxfp4", "deepseek_v32-bf16-sharded", "glm_moe_dsa-bf16-sharded",
    "kimi_linear-bf16-sharded",
]

/// `sum(p.numel() for p in model.parameters())` as transformers computed it (validation/fixtures/make_fixtures.py).
private func pytorchParameterCount(_ fixture: String) throws -> Int {
    let reference = try JSONParser.parse([UInt8](try Data(contentsOf: fixtures.appendingPathComponent(fixture + "/reference.json"))))
    return try #require(reference["parameter_count"]?.intValue)
}

@Test(arguments: checkpointFixtures)
func totalParametersEqualPyTorchCount(fixture: String) throws {
    let inspection = try CheckpointInspection(path: fixtures.appendingPathComponent(fixture).path)
    let report = try #require(inspection.report)
    #expect(report.totalParameters == (try pytorchParameterCount(fixture)))
    #expect(report.unknownTensors.isEmpty, "unclassified: \(report.unknownTensors)")
    #expect(report.activeParameters < report.totalParameters)
}

@Test func activeParametersCountTopKExperts() throws {
    let inspection = try CheckpointInspection(path: fixtures.appendingPathComponent("deepseek_v3-f32").path)
    let spec = try #require(inspection.spec)
    let report = try #require(inspection.report)
    let routed = report.parametersByCategory[.routedExperts] ?? 0
    // 2 MoE layers × 8 experts × 3·64·32 parameters; top-2 of them are active per layer.
    #expect(routed == spec.moeLayerCount * spec.routedExpertCount * spec.parametersPerExpert)
    #expect(
        report.activeParameters == report.totalParameters - routed + spec.moeLayerCount * spec.expertsPerToken * spec.parametersPerExpert)
    #expect(report.bufferElements == 16)  // e_score_correction_bias is a buffer, not a parameter
}

@Test func releasedAndCurrentConfigLayoutsGiveTheSameSpec() throws {
    let current = try ModelSpec(configFile: fixtures.appendingPathComponent("deepseek_v3-bf16-sharded/config.json").path)
    let released = try ModelSpec(configFile: fixtures.appendingPathComponent("deepseek_v3-bf16-released/config.json").path)
    #expect(current.ropeTheta == released.ropeTheta)
    #expect(current.ropeScaling == released.ropeScaling)
    #expect(current.ropeScaling?.type == "yarn")
    #expect(current.latentAttention == released.latentAttention)
    #expect(current.denseLayers == [0])
    #expect(current.expertGroupCount == 2 && current.expertGroupsUsed == 1)
    #expect(current.dtype == "bfloat16" && released.dtype == "bfloat16")
}

@Test func kimiK25NestsTheLanguageModelUnderTextConfig() throws {
    let inner = try #require(ModelPresets.named("kimi-k2", architecture: .deepseekV3)?.config)
    let outer: JSONValue = [
        "architectures": ["KimiK25ForConditionalGeneration"], "model_type": "kimi_k25",
        "text_config": inner, "vision_config": ["hidden_size": 1152],
    ]
    let spec = try ModelSpec(config: outer)
    #expect(spec.nestedTextConfig)
    #expect(spec.modelType == "kimi_k2")
    #expect(spec.routedExpertCount == 384 && spec.hiddenSize == 7168)
    #expect(spec.quantization == .fp8Block(blockRows: 128, blockColumns: 128))
}

@Test func unknownModelTypeListsTheSupportedOnes() {
    #expect(
        throws: CatalogError.unsupportedModelType(file: "config.json", modelType: "llama", supported: Architecture.modelTypes.keys.sorted())
    ) {
        try ModelSpec(config: ["model_type": "llama", "hidden_size": 8])
    }
    let message = CatalogError.unsupportedModelType(file: "config.json", modelType: "llama", supported: ["mixtral", "qwen3_moe"])
        .description
    #expect(message.contains("mixtral") && message.contains("qwen3_moe"))
}

@Test func missingAndInvalidFieldsAreNamed() {
    #expect(throws: CatalogError.missingField(file: "config.json", field: "num_local_experts")) {
        try ModelSpec(config: [
            "model_type": "mixtral", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "vocab_size": 10, "intermediate_size": 4, "num_experts_per_tok": 2,
        ])
    }
    #expect(
        throws: CatalogError.invalidField(file: "config.json", field: "hidden_size", reason: "expected an integer in 1…65536, found \"8\"")
    ) {
        try ModelSpec(config: ["model_type": "mixtral", "hidden_size": "8"])
    }
}

@Test func rolesOfDeepseekNames() throws {
    let spec = try ModelSpec(configFile: fixtures.appendingPathComponent("deepseek_v3-f32/config.json").path)
    let classifier = TensorClassifier(spec: spec)
    #expect(classifier.classify("model.embed_tokens.weight").role == .embedding)
    #expect(classifier.classify("lm_head.weight").role == .outputHead)
    #expect(
        classifier.classify("model.layers.1.mlp.experts.7.down_proj.weight").role == .routedExpert(layer: 1, expert: 7, projection: .down))
    #expect(classifier.classify("model.layers.1.mlp.gate.e_score_correction_bias").role == .routerBias(layer: 1))
    #expect(classifier.classify("model.layers.1.mlp.gate.weight").role == .router(layer: 1))
    #expect(classifier.classify("model.layers.2.mlp.shared_experts.up_proj.weight").role == .sharedExpert(layer: 2, projection: .up))
    #expect(classifier.classify("model.layers.0.mlp.gate_proj.weight").role == .denseFeedForward(layer: 0, projection: .gate))
    #expect(classifier.classify("model.layers.0.self_attn.kv_b_proj.weight").role == .attention(layer: 0, part: .keyValueB))
    let scale = classifier.classify("model.layers.0.self_attn.kv_b_proj.weight_scale_inv")
    #expect(scale.role == .attention(layer: 0, part: .keyValueB) && scale.part == .fp8ScaleInverse)
    let packed = classifier.classify("language_model.model.layers.1.mlp.experts.3.gate_proj.weight_packed")
    #expect(packed.role == .routedExpert(layer: 1, expert: 3, projection: .gate) && packed.part == .packed)
    #expect(classifier.classify("model.layers.3.enorm.weight").role == .nextTokenPrediction(layer: 3, part: .embeddingNorm))
    #expect(classifier.classify("model.layers.3.self_attn.kv_b_proj.weight").role == .nextTokenPrediction(layer: 3, part: .block))
    #expect(classifier.classify("model.layers.1.mlp.experts.gate_up_proj").role == .routedExperts(layer: 1, projection: .gateUp))
    #expect(classifier.classify("model.vision_tower.patch_embed.weight").role == .unknown)
    #expect(classifier.classify("model.layers.x.mlp.gate.weight").role == .unknown)
}

@Test func rolesOfMixtralAndQwenNames() throws {
    let mixtral = TensorClassifier(spec: try ModelSpec(configFile: fixtures.appendingPathComponent("mixtral-f32/config.json").path))
    #expect(
        mixtral.classify("model.layers.1.block_sparse_moe.experts.3.w3.weight").role == .routedExpert(layer: 1, expert: 3, projection: .up))
    #expect(
        mixtral.classify("model.layers.1.block_sparse_moe.experts.3.w2.weight").role
            == .routedExpert(layer: 1, expert: 3, projection: .down))
    #expect(mixtral.classify("model.layers.1.block_sparse_moe.gate.weight").role == .router(layer: 1))
    let qwen = TensorClassifier(spec: try ModelSpec(configFile: fixtures.appendingPathComponent("qwen3_moe-f32/config.json").path))
    #expect(qwen.classify("model.layers.0.self_attn.q_norm.weight").role == .attention(layer: 0, part: .queryNorm))
}

@Test func unknownTensorsAreReportedNotDropped() throws {
    let directory = NSTemporaryDirectory() + "moeq-unknown-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let source = fixtures.appendingPathComponent("mixtral-f32").path
    try FileManager.default.copyItem(atPath: source + "/config.json", toPath: directory + "/config.json")
    let original = try SafetensorsFile(path: source + "/model.safetensors")
    let specs =
        original.tensors.map { TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) } + [
            TensorSpec(name: "model.mystery.weight", dtype: .f32, shape: [3])
        ]
    let writer = try SafetensorsWriter(path: directory + "/model.safetensors", tensors: specs)
    for tensor in original.tensors { try writer.write(tensor.name, bytes: original.data(of: tensor)) }
    try writer.finish()
    let report = try #require(try CheckpointInspection(path: directory).report)
    #expect(report.unknownTensors == ["model.mystery.weight"])
    #expect(report.parametersByCategory[.unknown] == 3)
    #expect(report.totalParameters == (try pytorchParameterCount("mixtral-f32")) + 3)
}

@Test func everyBundledSpecMatchesItsPublishedTotals() throws {
    // formats/models/*.json: each file's "published" block names its source (model cards, llama-bench's count).
    let bundled = try ModelPresets.bundled()
    #expect(
        Set(bundled.map(\.name)) == [
            "kimi-k2.5", "kimi-k2", "kimi-k2-thinking", "deepseek-v3", "deepseek-r1", "deepseek-v3.2", "glm-5", "glm-4.6",
            "kimi-linear-48b-a3b", "qwen3-235b-a22b",
            "qwen3-30b-a3b",
            "mixtral-8x7b", "mixtral-8x22b", "gpt-oss-120b", "gpt-oss-20b", "glm-4.5-air", "minimax-m2",
        ])
    for preset in bundled {
        let spec = try ModelSpec(config: preset.config)
        let classifier = TensorClassifier(spec: spec)
        let published = try #require(preset.published, "\(preset.name) has no published counts")
        var total = 0, routed = 0, alwaysOn = 0
        for tensor in spec.expectedTensors() {
            let role = classifier.classify(tensor.name).role
            #expect(role != .unknown, "\(preset.name): \(tensor.name)")
            if case .nextTokenPrediction(_, let part) = role {
                // A count that leaves out the embedding and output matrices leaves out the MTP layer's copies too.
                let excluded =
                    (part == .embedding && published.totalExcludes.contains(.embedding))
                    || (part == .head && published.totalExcludes.contains(.outputHead))
                if published.totalIncludesMTP && !excluded { total += tensor.shape.reduce(1, *) }
                continue
            }
            if case .routerBias = role { continue }
            let count = tensor.shape.reduce(1, *)
            switch role {
            case .routedExpert, .routedExperts: routed += count
            default:
                if !published.activeExcludes.contains(role.category) { alwaysOn += count }
            }
            if !published.totalExcludes.contains(role.category) { total += count }
        }
        if let step = published.roundedTo {
            // A figure like "48B": the count must round to it.
            #expect(abs(Double(total) - published.totalParameters) <= step / 2, "\(preset.name): \(total) vs \(published.totalParameters)")
        } else {
            #expect(abs(Double(total) / published.totalParameters - 1) < 0.005, "\(preset.name): \(total) vs \(published.totalParameters)")
        }
        // Active = everything but the routed experts, plus top-k of them; published active counts are rounder, so 5 %.
        let active = Double(alwaysOn) + Double(routed) * Double(spec.expertsPerToken) / Double(spec.routedExpertCount)
        let activeTolerance = published.roundedTo.map { $0 / 2 } ?? 0.05 * published.activeParameters
        #expect(
            abs(active - published.activeParameters) <= activeTolerance, "\(preset.name): active \(active) vs \(published.activeParameters)"
        )
        print(
            """
            \(preset.name): \(total) total (published \(published.totalParameters)), \(Int(active)) active (published \
            \(published.activeParameters))
            """
        )
    }
}
