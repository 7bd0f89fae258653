// moeq's importance matrices against llama-imatrix's on the same tokens (files made by validation/gguf/make_lowbit_oracle.py).
import Foundation
import Testing
@testable import ReferenceEngine
import ModelCatalog
import TensorFormats

private let validation = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation")

/// llama-imatrix on moeq's F32 GGUF and moeq's collector on the checkpoint, both over the held-out KJV text as
/// llama-imatrix chunks it (BOS first, every chunk of 64 starting with BOS, 8 chunks): the same entries — every
/// per-layer matmul, routers and MLA's per-head attn_k_b / attn_v_b included — the same token counts per matrix
/// (routing decisions included), and every mean x² within float tolerance of llama.cpp's (which keeps its KV cache in
/// F16 and sums in float32).
@Test(arguments: ["trained-qwen3_moe_wide", "trained-deepseek_v3_wide", "trained-mixtral"])
func importanceMatrixEqualsLlamaImatrix(fixture: String) throws {
    let directory = validation.appendingPathComponent("fixtures/\(fixture)")
    let llama = try ImportanceMatrix(path: validation.appendingPathComponent("gguf/imatrix/\(fixture).llama-imatrix.gguf").path)
    let config = try JSONParser.parse([UInt8](try Data(contentsOf: directory.appendingPathComponent("config.json"))))
    let bos = try #require(config["bos_token_id"]?.intValue)
    let text = try String(contentsOf: validation.appendingPathComponent("fixtures/trained/kjv-heldout.txt"), encoding: .utf8)
    let ids = [bos] + (try BPETokenizer(path: directory.appendingPathComponent("tokenizer.json").path).encode(text))
    let weights = try CheckpointWeights(path: directory.path)
    let collector = ImportanceCollector(spec: weights.spec)
    for window in QuantValidation.windows(tokens: ids, context: 64, maxChunks: 8, beginningOfSequence: bos) {
        _ = try ReferenceModel.logits(weights: weights, tokens: window, observer: collector)
    }
    let output = NSTemporaryDirectory() + "moeq-imatrix-\(UUID().uuidString).gguf"
    defer { for p in [output, OutputManifest.path(for: output)] { try? FileManager.default.removeItem(atPath: p) } }
    try collector.write(to: output, dataset: "kjv-heldout.txt", chunks: 8, chunkSize: 64)
    let ours = try ImportanceMatrix(path: output)

    #expect(ours.chunkCount == llama.chunkCount)
    #expect(ours.entries.keys.sorted() == llama.entries.keys.sorted())
    if weights.spec.latentAttention != nil {
        #expect(llama.entries["blk.0.attn_k_b.weight"] != nil && llama.entries["blk.0.attn_v_b.weight"] != nil)
    }
    #expect(llama.entries.keys.contains { $0.hasSuffix("ffn_gate_inp.weight") })
    var worst = (name: "", error: 0.0)
    for (name, expected) in llama.entries {
        guard let values = ours.entries[name] else { continue }
        #expect(ours.matrixCounts[name] == llama.matrixCounts[name], "\(name): token counts per matrix")
        #expect(values.count == expected.count, "\(name)")
        guard values.count == expected.count else { continue }
        // Relative to the largest value of the entry: small columns carry float noise of the large ones.
        let scale = Double(expected.map(abs).max() ?? 1)
        let error = zip(values, expected).map { Double(abs($0 - $1)) }.max().map { $0 / max(scale, 1e-30) } ?? 0
        if error > worst.error { worst = (name, error) }
    }
    #expect(worst.error < 1e-3, "\(fixture): worst \(worst.name) relative error \(worst.error)")
}
