// `convert` against llama.cpp itself: every tensor of our F32, Q8_0 and Q4_K_M GGUFs of the transformers-made
// fixtures has the type, shape and bytes (XXH3) of llama.cpp's convert_hf_to_gguf.py + llama-quantize output
// (validation/gguf/llama_cpp_tensors.json, made by validation/gguf/make_tensor_hashes.py).
import Foundation
import Testing
@testable import ConversionPipeline
import OutputPlanning
import ModelCatalog
import QuantKernels
import TensorFormats

private let validation = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation")

/// (architecture, recipe, imatrix format or nil).
private let cases: [(String, RecipeName, String?)] =
    ["deepseek_v3", "qwen3_moe", "mixtral"].flatMap { arch in
        [
            (arch, RecipeName.f32, nil), (arch, .q8_0, nil), (arch, .q4_K_M, nil),
            (arch, .q4_K_M, "gguf"), (arch, .q4_K_M, "dat"), (arch, .q4_0, "gguf"),
        ]
    } + ["glm4_moe", "minimax_m2", "gpt_oss"].flatMap { arch in [(arch, RecipeName.f32, nil), (arch, .q8_0, nil), (arch, .q4_K_M, nil)] }
    + [("gpt_oss", .mxfp4Moe, nil), ("gpt_oss-mxfp4", .mxfp4Moe, nil)]
    + ["deepseek_v32-bf16-sharded", "glm_moe_dsa-bf16-sharded", "kimi_linear-bf16-sharded"].flatMap { fixture in
        [RecipeName.f32, .q8_0, .q4_K_M].map { (fixture, $0, nil) }
    }

@Test(arguments: cases)
func convertMatchesLlamaCppTensorForTensor(arch: String, recipe: RecipeName, imatrixFormat: String?) throws {
    let oracle = try JSONParser.parse([UInt8](try Data(contentsOf: validation.appendingPathComponent("gguf/llama_cpp_tensors.json"))))
    let expected = try #require(oracle["files"]?["\(arch)/\(recipe.rawValue)\(imatrixFormat == nil ? "" : "+imatrix")"])
    let importance = try imatrixFormat.map {
        try ImportanceMatrix(path: validation.appendingPathComponent("gguf/imatrix/\(arch).imatrix.\($0)").path)
    }
    let directory = NSTemporaryDirectory() + "moeq-convert-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let output = directory + "/out.gguf"
    let plan = try GGUFConversion.plan(
        // `gpt_oss-mxfp4` (the release's MXFP4 experts, carried byte for byte) and `deepseek_v32-bf16-sharded` name their
        // fixture; the others are `ARCH-f32`.
        path: validation.appendingPathComponent("fixtures/\(arch.contains("-") ? arch : arch + "-f32")").path, recipe: recipe,
        importance: importance)
    let summary = try GGUFConversion.run(plan, output: output, threads: 2)
    let file = try GGUFFile(path: output)
    #expect(file.mapping.size == plan.layout.fileSize && summary.outputBytes == plan.layout.fileSize)  // --dry-run's size is exact

    let expectedTensors = try #require(expected["tensors"]?.objectValue)
    #expect(file.tensors.count == expectedTensors.count)
    for tensor in file.tensors {
        let reference = try #require(expectedTensors[tensor.name], "llama.cpp has no \(tensor.name)")
        #expect(reference["type"]?.stringValue == tensor.type.rawValue, "\(tensor.name) type")
        #expect(reference["ne"]?.arrayValue?.compactMap(\.intValue) == tensor.dimensions, "\(tensor.name) ne")
        #expect(reference["xxh3"]?.stringValue == ContentHash.hex(ContentHash.xxh3(file.data(of: tensor))), "\(tensor.name) bytes")
    }
    // Metadata: every key llama.cpp wrote (but its size label and our file's name) with the same value.
    for (key, value) in try #require(expected["metadata"]?.objectValue).pairs
    // (name, basename and finetune are llama.cpp's guesses from the fixture's directory name)
    where !["general.name", "general.basename", "general.finetune", "general.size_label", "quantize.imatrix.file"].contains(key)
        // The .dat twin was written by llama-imatrix with last_chunk 0, so its chunk count is not the GGUF's.
        && !(imatrixFormat == "dat" && key == "quantize.imatrix.chunks_count")
    {
        let ours = try #require(file[key], "missing \(key)")
        switch (value, ours) {
        case (.object(let array), .array(_, let elements)): #expect(array["length"]?.intValue == elements.count, "\(key)")
        case (.string(let s), _): #expect(ours.stringValue == s, "\(key)")
        case (.bool(let b), .bool(let o)): #expect(b == o, "\(key)")
        case (.integer(let i), _): #expect(ours.integerValue == Int(i), "\(key)")
        case (.double(let d), .float32(let f)): #expect(Float(d) == f, "\(key)")
        case (.array(let values), .array(.bool, let elements)):  // short arrays are stored whole (glm-dsa's indexer types)
            #expect(values.map(\.boolValue) == elements.map { if case .bool(let b) = $0 { b } else { nil } }, "\(key)")
        case (.array(let values), .array(_, let elements)):  // kimi-linear's head_count_kv per layer
            #expect(values.map(\.intValue) == elements.map(\.integerValue), "\(key)")
        default: Issue.record("\(key): unexpected \(value) vs \(ours)")
        }
    }
}

/// (trained fixture, recipe, with moeq's imatrix).
private let lowBitCases: [(String, RecipeName, Bool)] = ["trained-qwen3_moe_wide", "trained-deepseek_v3_wide", "trained-mixtral"].flatMap {
    fixture in
    [
        RecipeName.iq4_xs, .iq4_nl, .q3_K_L, .q3_K_M, .q3_K_S, .q2_K, .q2_K_S, .iq3_m, .iq3_s, .iq3_xs, .iq3_xxs, .iq2_m, .iq2_s,
        .iq2_xs, .iq2_xxs, .iq1_m, .iq1_s,
    ].flatMap { recipe in [(fixture, recipe, false), (fixture, recipe, true)] }
}

/// The low-bit recipes against llama-quantize run on our own F32 GGUF of the same checkpoint, with the same
/// imatrix (made by `moeq imatrix`): every tensor's type, ne and bytes (validation/gguf/llama_quantize_lowbit.json,
/// made by validation/gguf/make_lowbit_oracle.py).
@Test(arguments: lowBitCases)
func lowBitRecipesMatchLlamaQuantizeTensorForTensor(fixture: String, recipe: RecipeName, imatrix: Bool) throws {
    let oracle = try JSONParser.parse(
        [UInt8](try Data(contentsOf: validation.appendingPathComponent("gguf/llama_quantize_lowbit.json"))))
    let entry = try #require(oracle["files"]?["\(fixture)/\(recipe.rawValue)\(imatrix ? "+imatrix" : "")"])
    let importance =
        try imatrix
        ? ImportanceMatrix(path: validation.appendingPathComponent("gguf/imatrix/\(fixture).moeq.imatrix.gguf").path) : nil
    if let refusal = entry["refused"]?.stringValue {
        // llama-quantize would not make this file (a very-low-bit tensor without importance data): neither do we, and
        // we name the same tensor.
        do {
            _ = try GGUFConversion.plan(
                path: validation.appendingPathComponent("fixtures/\(fixture)").path, recipe: recipe, importance: importance)
            Issue.record("\(recipe.rawValue) planned although llama-quantize refused: \(refusal)")
        } catch let error as PlanningError {
            guard case .importanceRequired(let tensor, _, _, _) = error else { throw error }
            #expect(refusal.contains(tensor), "llama-quantize: \(refusal); moeq: \(error)")
        }
        return
    }
    let expected = try #require(entry["tensors"]?.objectValue)
    let output = NSTemporaryDirectory() + "moeq-lowbit-\(UUID().uuidString).gguf"
    defer {
        try? FileManager.default.removeItem(atPath: output)
        try? FileManager.default.removeItem(atPath: OutputManifest.path(for: output))
    }
    let plan = try GGUFConversion.plan(
        path: validation.appendingPathComponent("fixtures/\(fixture)").path, recipe: recipe, importance: importance)
    _ = try GGUFConversion.run(plan, output: output, threads: 2)
    let file = try GGUFFile(path: output)
    #expect(file.tensors.count == expected.count)
    for tensor in file.tensors {
        let reference = try #require(expected[tensor.name], "llama-quantize has no \(tensor.name)")
        #expect(reference["type"]?.stringValue == tensor.type.rawValue, "\(tensor.name) type")
        #expect(reference["ne"]?.arrayValue?.compactMap(\.intValue) == tensor.dimensions, "\(tensor.name) ne")
        #expect(reference["xxh3"]?.stringValue == ContentHash.hex(ContentHash.xxh3(file.data(of: tensor))), "\(tensor.name) bytes")
    }
    #expect(file[GGUFKey.fileType]?.integerValue == Int(recipe.fileType))
}

@Test func recipeRulesOnRealShapes() throws {
    // DeepSeek-V3: attn_k_b rows of 128 cannot be Q4_K (256) → Q5_0; ffn_down on use_more_bits layers → Q6_K.
    let spec = try ModelSpec(config: try #require(ModelPresets.named("deepseek-v3", architecture: .deepseekV3)).config)
    let plans = spec.tensorLayout.ggufTensors(includeOutputHead: true)
    let types = RecipeRules(recipe: .q4_K_M, spec: spec).types(for: plans)
    let typeOf = Dictionary(uniqueKeysWithValues: zip(plans.map(\.name), types))
    #expect(typeOf["blk.5.attn_k_b.weight"] == .q5_0)
    #expect(typeOf["output.weight"] == .q6_K)
    #expect(typeOf["blk.0.ffn_down.weight"] == .q6_K)  // layer 0 < 61/8
    #expect(typeOf["blk.10.ffn_down_exps.weight"] == .q4_K)  // (10 − 7) % 3 = 0
    #expect(typeOf["blk.9.ffn_down_exps.weight"] == .q6_K)  // (9 − 7) % 3 = 2
    #expect(typeOf["blk.9.ffn_gate_inp.weight"] == .f32)
    #expect(typeOf["blk.9.exp_probs_b.bias"] == .f32)
    #expect(RecipeRules.fallback(.q6_K, width: 2880) == .q8_0)
    #expect(RecipeRules.fallback(.q4_K, width: 100) == .f16)
    // llama-quantize's tensor_type_fallback: IQ4_XS → IQ4_NL (32-blocks), then F16 when even those do not fit.
    #expect(RecipeRules.fallback(.iq4_xs, width: 2880) == .iq4_nl)
    #expect(RecipeRules.fallback(.iq4_xs, width: 4096) == .iq4_xs)
    #expect(RecipeRules.fallback(.iq4_nl, width: 100) == .f16)
}

@Test func manifestBesideTheOutputVerifiesAndCatchesDamage() throws {
    let directory = NSTemporaryDirectory() + "moeq-manifest-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let output = directory + "/out.gguf"
    let plan = try GGUFConversion.plan(path: validation.appendingPathComponent("fixtures/qwen3_moe-f32").path, recipe: .q4_K_M)
    _ = try GGUFConversion.run(plan, output: output, threads: 2)
    let manifest = try OutputManifest(reading: output)
    #expect(try manifest.verify().isEmpty)
    // The streamed per-tensor hashes equal one-shot hashes of what the file holds.
    let file = try GGUFFile(path: output)
    for entry in manifest.tensors {
        let tensor = try #require(file.tensor(named: entry.name))
        #expect(entry.xxh3 == ContentHash.xxh3(file.data(of: tensor)), "\(entry.name)")
        #expect(entry.offset == file.dataStart + tensor.offset && entry.bytes == tensor.byteCount)
    }
    // Flip one byte inside blk.1.ffn_down_exps.weight.
    let target = try #require(manifest.tensors.first { $0.name == "blk.1.ffn_down_exps.weight" })
    let handle = try #require(FileHandle(forUpdatingAtPath: output))
    try handle.seek(toOffset: UInt64(target.offset + 5))
    let byte = try #require(try handle.read(upToCount: 1)?.first)
    try handle.seek(toOffset: UInt64(target.offset + 5))
    try handle.write(contentsOf: Data([byte ^ 0x10]))
    try handle.close()
    #expect(try manifest.verify() == ["blk.1.ffn_down_exps.weight"])
}

/// The thread count changes nothing but speed: 1, 2, 7 and 48 threads (more threads than some chunks have rows
/// to share evenly) write the same bytes.
@Test func threadCountDoesNotChangeTheOutput() throws {
    let plan = try GGUFConversion.plan(path: validation.appendingPathComponent("fixtures/deepseek_v3-f32").path, recipe: .q4_K_M)
    var digests: [Int: String] = [:]
    for threads in [1, 2, 7, 48] {
        let output = NSTemporaryDirectory() + "moeq-threads-\(threads)-\(UUID().uuidString).gguf"
        defer {
            try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json")
        }
        _ = try GGUFConversion.run(plan, output: output, threads: threads)
        digests[threads] = ContentHash.hex(ContentHash.xxh3([UInt8](try Data(contentsOf: URL(fileURLWithPath: output)))))
    }
    #expect(Set(digests.values).count == 1, "\(digests)")
}

/// DeepSeek-V3.2 and GLM-5 release checkpoints carry an MTP layer, which llama.cpp's deepseek32 / glm-dsa converters
/// keep as one more block (deepseek2 drops it). transformers builds no MTP layer, so the input here is `moeq synth`'s
/// tiny preset (one MTP layer, seed 0) and the oracle is llama.cpp's converter on that checkpoint
/// (`synth-tiny-<arch>-mtp/F32` in llama_cpp_tensors.json; validation/gguf/README.md, "MTP layers"): every tensor's
/// type, shape and bytes, and every non-tokenizer key.
@Test(arguments: [Architecture.deepseekV32, .glmMoeDsa])
func mtpLayersAreKeptAsLlamaCppKeepsThem(architecture: Architecture) throws {
    let oracle = try JSONParser.parse([UInt8](try Data(contentsOf: validation.appendingPathComponent("gguf/llama_cpp_tensors.json"))))
    let expected = try #require(oracle["files"]?["synth-tiny-\(architecture.rawValue)-mtp/F32"])
    let directory = NSTemporaryDirectory() + "moeq-mtp-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var options = SyntheticOptions(preset: try #require(ModelPresets.named("tiny", architecture: architecture)), dtype: .bf16)
    options.seed = 0
    _ = try SyntheticCheckpoint.write(options, to: directory + "/src")
    let plan = try GGUFConversion.plan(path: directory + "/src", recipe: .f32)
    #expect(plan.spec.nextTokenPredictionLayers == 1)
    _ = try GGUFConversion.run(plan, output: directory + "/out.gguf", threads: 2)
    let file = try GGUFFile(path: directory + "/out.gguf")
    let expectedTensors = try #require(expected["tensors"]?.objectValue)
    #expect(file.tensors.count == expectedTensors.count)
    #expect(file.tensors.contains { $0.name.hasPrefix("blk.\(plan.spec.layerCount).nextn.") })
    for tensor in file.tensors {
        let reference = try #require(expectedTensors[tensor.name], "llama.cpp has no \(tensor.name)")
        #expect(reference["ne"]?.arrayValue?.compactMap(\.intValue) == tensor.dimensions, "\(tensor.name) ne")
        #expect(reference["xxh3"]?.stringValue == ContentHash.hex(ContentHash.xxh3(file.data(of: tensor))), "\(tensor.name) bytes")
    }
    for (key, value) in try #require(expected["metadata"]?.objectValue).pairs {
        let ours = try #require(file[key], "missing \(key)")
        switch (value, ours) {
        case (.integer(let i), _): #expect(ours.integerValue == Int(i), "\(key)")
        case (.string(let s), _): #expect(ours.stringValue == s, "\(key)")
        case (.double(let d), .float32(let f)): #expect(Float(d) == f, "\(key)")
        case (.bool(let b), .bool(let o)): #expect(b == o, "\(key)")
        case (.array(let values), .array(.bool, let elements)):
            #expect(values.map(\.boolValue) == elements.map { if case .bool(let b) = $0 { b } else { nil } }, "\(key)")
        default: Issue.record("\(key): unexpected \(value) vs \(ours)")
        }
    }
}
