// GLM-5 (`glm_moe_dsa`): DeepSeek-V3.2's layer — MLA with q LoRA, the lightning indexer, a sigmoid router with a
// selection bias, shared experts, leading dense layers — at GLM's sizes, with the indexer's rope in interleaved pairs
// (transformers `GlmMoeDsaIndexer`). Layers may be "shared", reusing the previous indexer's choice (`indexer_types`);
// only all-"full" configs (transformers' default, and llama.cpp's `indexer.types` all true) are handled here.
// GGUF: llama.cpp's `glm-dsa` (LCPP conversion/glm.py `GlmMoeDsaModel`): deepseek32's tensors and keys plus
// `attention.indexer.types`.
import TensorFormats

extension ArchitectureTable {
    public static let glmMoeDsa = ArchitectureTable(
        architecture: .glmMoeDsa, modelTypes: ["glm_moe_dsa"], ggufArchitecture: "glm-dsa", isConvertible: true,
        namePrefixes: HFNames.wrappers, checkpointTensors: DeepseekV32.checkpointTensors, fileTensors: DeepseekV32.fileTensors,
        hyperParameters: GlmMoeDsa.hyperParameters, readConfig: GlmMoeDsa.readConfig, configFromGGUF: GlmMoeDsa.configFromGGUF,
        namedSpecialTokens: glmSpecialTokens)
}

enum GlmMoeDsa {
    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        // One flag per layer: true where the layer runs its own indexer (every layer here).
        DeepseekV32.hyperParameters(s) + [(.indexerTypes, .array(.bool, (0..<s.layerCount).map { _ in .bool(true) }))]
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        [("model_type", "glm_moe_dsa")] + (try DeepseekV32.configFromGGUF(h)).filter { $0.0 != "model_type" }
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        try DeepseekV32.readConfig(&s, read)
        s.indexer?.interleavedRope = true
        if let types = read["indexer_types"], !types.isNull {
            guard let list = types.arrayValue, list.count == s.layerCount else {
                throw .inconsistent(file: read.file, reason: "indexer_types must list num_hidden_layers (\(s.layerCount)) entries")
            }
            for (i, type) in list.enumerated() where type.stringValue != "full" {
                throw .invalidField(
                    file: read.file, field: "indexer_types[\(i)]",
                    reason: "\(type.serialized()): layers that reuse another layer's indexer (\"shared\") are not supported yet")
            }
        } else if read["index_topk_pattern"] != nil || read["index_topk_freq"] != nil {
            throw .invalidField(
                file: read.file, field: "index_topk_pattern", reason: "layers that reuse another layer's indexer are not supported yet")
        }
    }
}
