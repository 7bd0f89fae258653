// The reference forward pass against transformers' own logits of the fixtures (validation/fixtures/*/logits.npy).
import Foundation
import Testing
@testable import ReferenceEngine
import ConversionPipeline
import OutputPlanning
import ModelCatalog
import TensorFormats

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

/// A float32 .npy (little-endian, C order): values and shape.
func readNumpy(_ url: URL) throws -> (values: [Float], shape: [Int]) {
    let data = try Data(contentsOf: url)
    let headerLength = Int(data[8]) | Int(data[9]) << 8
    let header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
    let shapeText = header.split(separator: "(")[1].split(separator: ")")[0]
    let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    let body = data[(10 + headerLength)...]
    let values = body.withUnsafeBytes { raw in
        (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
    return (values, shape)
}

@Test(arguments: [
    "deepseek_v3-f32", "deepseek_v3-bf16-sharded", "deepseek_v3-bf16-released", "qwen3_moe-f32",
    "qwen3_moe-bf16-sharded", "mixtral-f32", "mixtral-bf16-sharded", "glm4_moe-f32", "minimax_m2-f32",
    "gpt_oss-f32", "gpt_oss-mxfp4", "deepseek_v32-bf16-sharded", "glm_moe_dsa-bf16-sharded",
    "kimi_linear-bf16-sharded", "trained-deepseek_v3_wide", "trained-mixtral", "trained-qwen3_moe_wide",
])
func logitsMatchTransformers(fixture: String) throws {
    let directory = fixtures.appendingPathComponent(fixture)
    let referenceData = try Data(contentsOf: directory.appendingPathComponent("reference.json"))
    let reference = try JSONParser.parse([UInt8](referenceData))
    let tokens = (reference["tokens"]?.arrayValue ?? []).compactMap { $0.intValue }
    #expect(!tokens.isEmpty)
    let (expected, shape) = try readNumpy(directory.appendingPathComponent("logits.npy"))
    let (ours, vocabulary) = try ReferenceModel.logits(checkpointPath: directory.path, tokens: tokens)
    #expect(shape == [tokens.count, vocabulary])
    let scale = expected.map(abs).max() ?? 1
    let worst = zip(ours, expected).map { abs($0 - $1) }.max() ?? 0
    #expect(worst / scale < 1e-4, "\(fixture): max |Δ| / max |ref| = \(worst / scale)")
    // Same top-1 prediction at every position.
    for t in 0..<tokens.count {
        let a = ours[(t * vocabulary)..<((t + 1) * vocabulary)], b = expected[(t * vocabulary)..<((t + 1) * vocabulary)]
        #expect(a.firstIndex(of: a.max()!) == b.firstIndex(of: b.max()!), "\(fixture) position \(t)")
    }
}

/// llama-perplexity's method on the held-out KJV text ([BOS] + ids, chunks of 256 starting with BOS, second half
/// scored) gives transformers' perplexity from train.py to at least 4 significant digits.
@Test(arguments: ["trained-deepseek_v3_wide", "trained-mixtral", "trained-qwen3_moe_wide"])
func heldOutPerplexityEqualsTransformers(fixture: String) throws {
    let directory = fixtures.appendingPathComponent(fixture)
    let reference = try JSONParser.parse([UInt8](try Data(contentsOf: directory.appendingPathComponent("reference.json"))))
    let expected = try #require(reference["perplexity"]?["ppl"]?.doubleValue)
    let config = try JSONParser.parse([UInt8](try Data(contentsOf: directory.appendingPathComponent("config.json"))))
    let bos = try #require(config["bos_token_id"]?.intValue)
    let text = try String(contentsOf: fixtures.appendingPathComponent("trained/kjv-heldout.txt"), encoding: .utf8)
    let ids = [bos] + (try (try BPETokenizer(path: directory.appendingPathComponent("tokenizer.json").path)).encode(text))
    let weights = try CheckpointWeights(path: directory.path)
    let windows = QuantValidation.windows(tokens: ids, context: 256, maxChunks: nil, beginningOfSequence: bos)
    let (perplexity, positions) = try QuantValidation.perplexity(model: weights, configDirectory: directory.path, windows: windows)
    #expect(positions == reference["perplexity"]?["scored_tokens"]?.intValue)
    #expect(abs(perplexity - expected) / expected < 5e-5, "\(fixture): ours \(perplexity), transformers \(expected)")
}

@Test(arguments: [
    "deepseek_v3-f32", "qwen3_moe-f32", "mixtral-f32", "glm4_moe-f32", "minimax_m2-f32", "gpt_oss-f32", "deepseek_v32-bf16-sharded",
    "glm_moe_dsa-bf16-sharded", "kimi_linear-bf16-sharded",
])
func engineOnOurF32GGUFEqualsEngineOnTheCheckpoint(fixture: String) throws {
    let directory = fixtures.appendingPathComponent(fixture).path
    let output = NSTemporaryDirectory() + "moeq-engine-\(fixture)-\(UUID().uuidString).gguf"
    defer { try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json") }
    let plan = try GGUFConversion.plan(path: directory, recipe: .f32)
    _ = try GGUFConversion.run(plan, output: output, threads: 2)
    let tokens = [1, 5, 9, 200, 3, 77, 12, 64]
    let base = try ReferenceModel.logits(weights: try CheckpointWeights(path: directory), tokens: tokens)
    let quant = try ReferenceModel.logits(weights: try ReferenceModel.weights(path: output, configDirectory: directory), tokens: tokens)
    #expect(base == quant)  // F32 GGUF round-trips every weight exactly (stacking, rope permutation and kv_b split undone)
}

@Test func validateSeesNoDifferenceForF32AndASmallOneForQ8_0() throws {
    let directory = fixtures.appendingPathComponent("mixtral-f32").path
    let tokens = (0..<192).map { ($0 * 37 + 11) % 400 + 3 }
    var results: [RecipeName: QuantValidationReport] = [:]
    for recipe in [RecipeName.f32, .q8_0] {
        let output = NSTemporaryDirectory() + "moeq-validate-\(recipe.rawValue)-\(UUID().uuidString).gguf"
        defer {
            try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json")
        }
        _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: recipe), output: output, threads: 2)
        let quant = try ReferenceModel.weights(path: output, configDirectory: directory)
        var report = try QuantValidation.run(
            quant: quant, base: .model(try CheckpointWeights(path: directory)), configDirectory: directory,
            windows: QuantValidation.windows(tokens: tokens, context: 64, maxChunks: nil, beginningOfSequence: nil)
        ).report
        report.tensors = try QuantValidation.tensorErrors(
            quant: try #require(quant as? GGUFWeights), base: try CheckpointWeights(path: directory))
        results[recipe] = report
    }
    let f32 = try #require(results[.f32]), q8 = try #require(results[.q8_0])
    #expect(f32.chunks == 3 && f32.positions == 3 * 31)
    #expect(f32.ratio == 1 && f32.meanKLD == 0 && f32.top1Agreement == 1 && f32.tensors.allSatisfy { $0.metrics.rmse == 0 })
    #expect(q8.meanKLD > 0 && q8.meanKLD < 0.01 && q8.top1Agreement > 0.9)
    #expect(q8.ratioLow <= q8.ratio && q8.ratio <= q8.ratioHigh)
    #expect(q8.tensors.first.map { $0.relativeRMSE > 0 && $0.relativeRMSE < 0.02 } == true)
}

/// A base-logits record (top-k + target log-prob, zstd) written by one run and read by the next gives the same
/// perplexities and top-1 agreement as the base model itself, a KLD that never exceeds the full-vocabulary one
/// and equals what the writing run predicted for it; other windows or a damaged file are refused.
@Test func baseLogitRecordReplacesTheBaseModel() throws {
    // A trained model: its distributions are peaked, so the top 32 hold most of the mass (on a random model they don't).
    let directory = fixtures.appendingPathComponent("trained-qwen3_moe_wide").path
    let text = try String(contentsOf: fixtures.appendingPathComponent("trained/kjv-heldout.txt"), encoding: .utf8)
    let tokens = Array(try (try BPETokenizer(path: directory + "/tokenizer.json")).encode(text).prefix(3 * 64))
    let windows = QuantValidation.windows(tokens: tokens, context: 64, maxChunks: nil, beginningOfSequence: 0)
    let output = NSTemporaryDirectory() + "moeq-record-\(UUID().uuidString).gguf"
    let recordPath = output + ".base"
    defer { for p in [output, output + ".manifest.json", recordPath] { try? FileManager.default.removeItem(atPath: p) } }
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .q4_0), output: output, threads: 2)
    let quant = try ReferenceModel.weights(path: output, configDirectory: directory)
    let base = try CheckpointWeights(path: directory)
    let (direct, made) = try QuantValidation.run(
        quant: quant, base: .model(base), configDirectory: directory, windows: windows, recordTopK: 32)
    let record = try #require(made)
    try record.write(to: recordPath)
    let stored = try BaseLogitRecord.read(path: recordPath)
    try stored.check(windows: windows, vocabulary: base.spec.vocabularySize, path: recordPath)
    #expect(stored.positions == 3 * 31 && stored.ids == record.ids && stored.logProbabilities == record.logProbabilities)
    let replayed = try QuantValidation.run(quant: quant, base: .record(stored), configDirectory: directory, windows: windows).report
    #expect(replayed.kldFromRecord && !direct.kldFromRecord)
    #expect(abs(replayed.basePerplexity - direct.basePerplexity) / direct.basePerplexity < 1e-6)
    #expect(replayed.quantPerplexity == direct.quantPerplexity && replayed.top1Agreement == direct.top1Agreement)
    let predicted = try #require(direct.recordMeanKLD)
    #expect(
        direct.meanKLD > 0 && replayed.meanKLD <= direct.meanKLD * (1 + 1e-9) && replayed.meanKLD > 0.6 * direct.meanKLD,
        "record \(replayed.meanKLD), full \(direct.meanKLD)")
    #expect(abs(replayed.meanKLD - predicted) <= 1e-6 * predicted)
    // Other windows, and a damaged payload, are refused with the file named.
    let shifted = QuantValidation.windows(tokens: Array(tokens.dropFirst()), context: 64, maxChunks: nil, beginningOfSequence: 0)
    #expect(throws: BaseLogitsError.self) { try stored.check(windows: shifted, vocabulary: base.spec.vocabularySize, path: recordPath) }
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: recordPath)))
    bytes[bytes.count - 3] ^= 0x5A
    try Data(bytes).write(to: URL(fileURLWithPath: recordPath))
    #expect(throws: BaseLogitsError.self) { _ = try BaseLogitRecord.read(path: recordPath) }
}

@Test func importanceMatrixCountsEveryRoutedToken() throws {
    let directory = fixtures.appendingPathComponent("qwen3_moe-f32").path
    let weights = try CheckpointWeights(path: directory)
    let collector = ImportanceCollector(spec: weights.spec)
    let tokens = (0..<96).map { ($0 * 53 + 7) % 390 + 3 }
    for chunk in 0..<3 {
        _ = try ReferenceModel.logits(weights: weights, tokens: Array(tokens[(chunk * 32)..<((chunk + 1) * 32)]), observer: collector)
    }
    let output = NSTemporaryDirectory() + "moeq-imatrix-\(UUID().uuidString).gguf"
    defer { try? FileManager.default.removeItem(atPath: output) }
    try collector.write(to: output, dataset: "test", chunks: 3, chunkSize: 32)
    let matrix = try ImportanceMatrix(path: output)
    #expect(matrix.chunkCount == 3 && matrix.datasets == ["test"])
    // Every token goes to top-k experts: the down projections' counts sum to tokens × k in every layer.
    for (_, counts) in collector.routing { #expect(counts.reduce(0, +) == 96 * weights.spec.expertsPerToken) }
    #expect(collector.routing.count == weights.spec.layerCount)
    let attentionQ = try #require(matrix.importance(for: "blk.0.attn_q.weight", width: weights.spec.hiddenSize))
    #expect(attentionQ.allSatisfy { $0 > 0 })  // mean x² of the normed hidden states
    #expect(matrix.entries["output.weight"] == nil)  // like llama-imatrix without --process-output
}

/// The offload layouts hold the stacked file's bytes: split = llama.cpp's two-file GGUF (split.* keys, the routed
/// experts in file 2), expert-major = a GGUF without routed experts + a page-aligned expert pack, hot experts first.
/// The engine runs the expert-major pair with a cache smaller than the experts and gives the stacked file's logits.
@Test(arguments: ["deepseek_v3-f32", "trained-qwen3_moe_wide"])
func offloadLayoutsCarryTheStackedBytesAndRunInTheEngine(fixture: String) throws {
    let directory = fixtures.appendingPathComponent(fixture).path
    let work = NSTemporaryDirectory() + "moeq-layouts-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    let plan = try GGUFConversion.plan(path: directory, recipe: .q4_K_M)
    let stacked = work + "/stacked.gguf"
    _ = try GGUFConversion.run(plan, output: stacked, threads: 2)
    let reference = try GGUFFile(path: stacked)
    func bytes(_ file: GGUFFile, _ name: String) throws -> [UInt8] { Array(file.data(of: try #require(file.tensor(named: name)))) }

    // split
    let files = try OffloadLayouts.runSplit(plan, output: work + "/split.gguf", threads: 2)
    let first = try GGUFFile(path: files[0].path), second = try GGUFFile(path: files[1].path)
    #expect(first["split.count"]?.integerValue == 2 && second["split.no"]?.integerValue == 1)
    #expect(first["split.tensors.count"]?.integerValue == reference.tensors.count)
    #expect(first.tensors.count + second.tensors.count == reference.tensors.count)
    #expect(second.tensors.allSatisfy { $0.name.contains("_exps") } && first.tensors.allSatisfy { !$0.name.contains("_exps") })
    for tensor in first.tensors + second.tensors {
        let file = first.tensor(named: tensor.name) != nil ? first : second
        #expect(try bytes(file, tensor.name) == bytes(reference, tensor.name), "\(tensor.name)")
    }

    // expert-major, with routing counts that make expert 3 the hottest everywhere
    let spec = plan.spec
    var hits: [Int: [Int]] = [:]
    for layer in 0..<spec.layerCount { hits[layer] = (0..<spec.routedExpertCount).map { $0 == 3 ? 100 : $0 } }
    let dense = work + "/major.gguf"
    let written = try OffloadLayouts.runExpertMajor(plan, output: dense, threads: 2, alignment: 4096, hits: hits)
    let moeLayers = (0..<spec.layerCount).filter { spec.isMoELayer($0) }.count
    #expect(written.records == moeLayers * spec.routedExpertCount)
    let layout = try plan.packLayout(alignment: 4096, hits: hits, denseFile: "major.gguf")
    #expect(layout.records.allSatisfy { $0.offset % 4096 == 0 })
    #expect(layout.records.first?.expert == 3 && layout.records[1].expert == spec.routedExpertCount - 1)
    let pack = try MappedFile(path: ConversionPlan.packPath(output: dense))
    for record in layout.records.prefix(6) {
        for part in record.parts {
            let info = try #require(reference.tensor(named: part.tensor))
            let perExpert = info.byteCount / spec.routedExpertCount
            #expect(
                Array(pack.bytes(in: (record.offset + part.offset)..<(record.offset + part.offset + part.bytes)))
                    == Array(reference.data(of: info)[(record.expert * perExpert)..<((record.expert + 1) * perExpert)]))
        }
    }
    let tokens = [0, 5, 9, 200, 3, 77, 12, 64, 31, 8, 150, 2]
    let fromStacked = try ReferenceModel.logits(
        weights: try ReferenceModel.weights(path: stacked, configDirectory: directory), tokens: tokens)
    let packed = try #require(try ReferenceModel.weights(path: dense, configDirectory: directory, expertCache: 3) as? ExpertPackWeights)
    var fromPack: [Float] = []
    for _ in 0..<2 { fromPack = try ReferenceModel.logits(weights: packed, tokens: tokens) }
    #expect(fromPack == fromStacked)
    #expect(packed.capacity < written.records && packed.misses > 0 && packed.hits + packed.misses > written.records)
}

/// DeepSeek-V3.2's indexer really selects: the fixture's queries attend to their top 4 of up to 16 keys, and the same
/// weights with `index_topk` at the window's length (dense attention, what a DeepSeek-V3 engine computes) give logits
/// far from transformers', while the sparse pass matches them (`logitsMatchTransformers`).
@Test func indexerTopKChangesTheLogits() throws {
    let source = fixtures.appendingPathComponent("deepseek_v32-bf16-sharded")
    let dense = NSTemporaryDirectory() + "moeq-dense-v32-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: dense) }
    try FileManager.default.copyItem(atPath: source.path, toPath: dense)
    let config = dense + "/config.json"
    let text = try String(contentsOfFile: config, encoding: .utf8)
    #expect(text.contains("\"index_topk\": 4,"))
    try text.replacingOccurrences(of: "\"index_topk\": 4,", with: "\"index_topk\": 64,").write(
        toFile: config, atomically: true, encoding: .utf8)
    let reference = try JSONParser.parse([UInt8](try Data(contentsOf: source.appendingPathComponent("reference.json"))))
    let tokens = (reference["tokens"]?.arrayValue ?? []).compactMap { $0.intValue }
    let (expected, _) = try readNumpy(source.appendingPathComponent("logits.npy"))
    let (sparse, _) = try ReferenceModel.logits(checkpointPath: source.path, tokens: tokens)
    let (denseLogits, _) = try ReferenceModel.logits(checkpointPath: dense, tokens: tokens)
    let scale = expected.map(abs).max() ?? 1
    func worst(_ a: [Float]) -> Float { (zip(a, expected).map { abs($0 - $1) }.max() ?? 0) / scale }
    #expect(worst(sparse) < 1e-4)
    #expect(worst(denseLogits) > 1e-2, "dense attention is \(worst(denseLogits)) from transformers' sparse logits")
    // The first four positions have at most four keys: there the two agree.
    let vocabulary = expected.count / tokens.count
    #expect(Array(denseLogits[0..<(4 * vocabulary)]) == Array(sparse[0..<(4 * vocabulary)]))
}

/// FP8 block-scaled sources (GLM-4.5/4.6, MiniMax-M2, DeepSeek-V3.2 and GLM-5 release FP8; Kimi-Linear for good
/// measure): a synthetic FP8 checkpoint converts to an F32 GGUF on which the engine gives the checkpoint's logits exactly.
@Test(arguments: [Architecture.glm4Moe, .minimaxM2, .deepseekV32, .glmMoeDsa, .kimiLinear])
func fp8SourcesConvertAndRun(architecture: Architecture) throws {
    let directory = NSTemporaryDirectory() + "moeq-fp8-\(architecture.rawValue)-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var options = SyntheticOptions(preset: try #require(ModelPresets.named("tiny", architecture: architecture)), dtype: .fp8)
    options.seed = 11
    _ = try SyntheticCheckpoint.write(options, to: directory + "/src")
    let base = try CheckpointWeights(path: directory + "/src")
    #expect(base.spec.quantization == .fp8Block(blockRows: 128, blockColumns: 128))
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory + "/src", recipe: .f32), output: directory + "/out.gguf", threads: 2)
    let tokens = [1, 5, 9, 200, 3, 77, 12, 64, 300, 41, 7, 8]
    let expected = try ReferenceModel.logits(weights: base, tokens: tokens)
    let quant = try ReferenceModel.weights(path: directory + "/out.gguf", configDirectory: directory + "/src")
    #expect(try ReferenceModel.logits(weights: quant, tokens: tokens) == expected)
    #expect(expected.allSatisfy(\.isFinite) && Set(expected).count > 100)
}
