// Bundled model specs: the config.json of each real MoE release, kept as data in formats/models/ (a link to this
// module's Resources/models), plus tiny test models for `synth`.
import Foundation
import TensorFormats

/// Published parameter counts of a model, with where they come from.
public struct PublishedCounts: Sendable {
    public let totalParameters: Double
    public let activeParameters: Double
    /// Role categories the publisher leaves out of each count ("embedding", "outputHead"): vendors differ.
    public var totalExcludes: Set<RoleCategory> = []
    public var activeExcludes: Set<RoleCategory> = []
    /// The total counts the multi-token-prediction layers too (`"total_includes": ["mtp"]`; Z.ai's GLM-4.5/4.6).
    public var totalIncludesMTP = false
    /// The vendor's figures are rounded to this many parameters (`"rounded_to": 1e9` for "48B" / "A3B"): a count
    /// matches when it rounds to them.
    public var roundedTo: Double? = nil
    public let source: String
}

/// A named model shape: the config.json a checkpoint of it ships, and its natural storage dtype.
public struct ModelPreset: Sendable {
    public let name: String
    public let architecture: Architecture
    public let config: JSONValue
    /// The dtype the released checkpoint stores its linear weights in.
    public let nativeDType: String
    /// Shard size used when writing it (HF checkpoints of this size ship ~5–17 GB shards).
    public let shardBytes: Int
    /// Where the numbers come from.
    public let source: String
    public var published: PublishedCounts? = nil
}

public enum ModelPresets {
    /// Bundled specs (formats/models/*.json) and the tiny test models.
    public static let all: [ModelPreset] = ((try? bundled()) ?? []) + tiny

    /// Reads every bundled spec file. Throws naming the file and field when one does not parse.
    public static func bundled() throws -> [ModelPreset] {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/models")
        guard let directory = ResourceLocator.url(bundle: "moeq_ModelCatalog", item: "models", sourceFallback: source) else {
            throw CatalogError.unreadable(
                file: "models",
                reason: "the bundled model specs (moeq_ModelCatalog.resources/models) are neither beside the binary nor in $MOEQ_RESOURCES")
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return try files.filter { $0.hasSuffix(".json") }.sorted().map { try preset(file: directory.appendingPathComponent($0).path) }
    }

    /// A bundled spec file as written: unknown keys refused.
    struct Document: Decodable {
        let format: String, name: String, source: String?, nativeDType: String?, shardBytes: Int?
        let published: Published?
        let config: JSONValue
        enum CodingKeys: String, CodingKey, CaseIterable {
            case format, name, source, published, config, nativeDType = "native_dtype", shardBytes = "shard_bytes"
        }
        struct Published: Decodable {
            let totalParameters: Double, activeParameters: Double, source: String
            let totalExcludes: [String]?, activeExcludes: [String]?, totalIncludes: [String]?, roundedTo: Double?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case source, totalParameters = "total_parameters", activeParameters = "active_parameters"
                case totalExcludes = "total_excludes", activeExcludes = "active_excludes", totalIncludes = "total_includes"
                case roundedTo = "rounded_to"
            }
        }
    }

    /// Parses one spec file: {"format", "name", "source", "native_dtype", "shard_bytes", "published": {…}, "config": {config.json}}.
    public static func preset(file: String) throws -> ModelPreset {
        let document: Document
        do { document = try StrictJSON.decode(Document.self, file: file) } catch let error as JSONDecodingError {
            throw CatalogError.invalidField(file: file, field: error.path, reason: error.reason)
        } catch let error as JSONError { throw CatalogError.unreadable(file: file, reason: error.reasonWithoutFile) }
        guard document.format == "moeq model spec 1" else {
            throw CatalogError.invalidField(file: file, field: "format", reason: "must be \"moeq model spec 1\"")
        }
        let spec = try ModelSpec(config: document.config, file: file)
        var published: PublishedCounts?
        if let p = document.published {
            func categories(_ key: String, _ items: [String]?) throws(CatalogError) -> Set<RoleCategory> {
                var set = Set<RoleCategory>()
                for item in items ?? [] {
                    switch item {
                    case "embedding": set.insert(.embedding)
                    case "output": set.insert(.outputHead)
                    default:
                        throw CatalogError.invalidField(
                            file: file, field: "published.\(key)", reason: "expected \"embedding\" or \"output\", found \"\(item)\"")
                    }
                }
                return set
            }
            for item in p.totalIncludes ?? [] where item != "mtp" {
                throw CatalogError.invalidField(
                    file: file, field: "published.total_includes", reason: "expected \"mtp\", found \"\(item)\"")
            }
            published = PublishedCounts(
                totalParameters: p.totalParameters, activeParameters: p.activeParameters,
                totalExcludes: try categories("total_excludes", p.totalExcludes),
                activeExcludes: try categories("active_excludes", p.activeExcludes),
                totalIncludesMTP: p.totalIncludes?.contains("mtp") ?? false, roundedTo: p.roundedTo,
                source: p.source)
        }
        return ModelPreset(
            name: document.name, architecture: spec.architecture, config: document.config,
            nativeDType: document.nativeDType ?? "bf16", shardBytes: document.shardBytes ?? 5_000_000_000,
            source: document.source ?? "", published: published)
    }

    static let tiny: [ModelPreset] = [
        ModelPreset(
            name: "tiny-deepseek-v3", architecture: .deepseekV3, config: tinyDeepseek(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-qwen3-moe", architecture: .qwen3Moe, config: tinyQwen3(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-mixtral", architecture: .mixtral, config: tinyMixtral(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-glm4-moe", architecture: .glm4Moe, config: tinyGlm4Moe(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-minimax-m2", architecture: .minimaxM2, config: tinyMiniMaxM2(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-gpt-oss", architecture: .gptOss, config: tinyGptOss(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-deepseek-v32", architecture: .deepseekV32, config: tinyDeepseekV32(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-glm-moe-dsa", architecture: .glmMoeDsa, config: tinyDeepseekV32(modelType: "glm_moe_dsa"),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(
            name: "tiny-kimi-linear", architecture: .kimiLinear, config: tinyKimiLinear(),
            nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
    ]

    /// The preset for `name` and `architecture` (`tiny` resolves per architecture).
    public static func named(_ name: String, architecture: Architecture) -> ModelPreset? {
        let key = name == "tiny" ? "tiny-" + architecture.rawValue.replacingOccurrences(of: "_", with: "-") : name
        return all.first { $0.name == key && $0.architecture == architecture }
    }

    /// A bundled preset by name alone (`moeq plan kimi-k2`).
    public static func named(_ name: String) -> ModelPreset? {
        all.first { $0.name == name && !$0.name.hasPrefix("tiny-") }
    }

    public static var names: [String] { ["tiny"] + all.map(\.name).filter { !$0.hasPrefix("tiny-") } }

    // MARK: - Families

    static func qwen3(
        hidden: Int, layers: Int, heads: Int, ff: Int, moeFF: Int, vocab: Int = 151936, experts: Int = 128,
        kvHeads: Int = 4, headDim: Int = 128, topK: Int = 8, bos: Int = 151643, eos: Int = 151645
    ) -> JSONValue {
        [
            "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
            "hidden_size": .integer(Int64(hidden)), "num_hidden_layers": .integer(Int64(layers)),
            "num_attention_heads": .integer(Int64(heads)), "num_key_value_heads": .integer(Int64(kvHeads)),
            "head_dim": .integer(Int64(headDim)), "intermediate_size": .integer(Int64(ff)),
            "moe_intermediate_size": .integer(Int64(moeFF)), "num_experts": .integer(Int64(experts)),
            "num_experts_per_tok": .integer(Int64(topK)), "decoder_sparse_step": 1, "mlp_only_layers": [],
            "norm_topk_prob": true, "vocab_size": .integer(Int64(vocab)), "max_position_embeddings": 40960,
            "rope_theta": 1000000.0, "rope_scaling": nil, "rms_norm_eps": 1e-6, "tie_word_embeddings": false,
            "attention_bias": false, "bos_token_id": .integer(Int64(bos)), "eos_token_id": .integer(Int64(eos)), "torch_dtype": "bfloat16",
        ]
    }

    static func mixtral(hidden: Int, layers: Int, heads: Int, kvHeads: Int, ff: Int, experts: Int, vocab: Int) -> JSONValue {
        [
            "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
            "hidden_size": .integer(Int64(hidden)), "num_hidden_layers": .integer(Int64(layers)),
            "num_attention_heads": .integer(Int64(heads)), "num_key_value_heads": .integer(Int64(kvHeads)),
            "intermediate_size": .integer(Int64(ff)), "num_local_experts": .integer(Int64(experts)),
            "num_experts_per_tok": 2, "vocab_size": .integer(Int64(vocab)), "max_position_embeddings": 32768,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-5, "sliding_window": nil, "tie_word_embeddings": false,
            "router_aux_loss_coef": 0.02, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
        ]
    }

    // MARK: - Tiny test models (a few MB)

    static func tinyDeepseek() -> JSONValue {
        [
            "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
            "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
            "q_lora_rank": 128, "kv_lora_rank": 128, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
            "intermediate_size": 512, "moe_intermediate_size": 128, "n_routed_experts": 8, "num_experts_per_tok": 2,
            "n_shared_experts": 1, "first_k_dense_replace": 1, "moe_layer_freq": 1, "n_group": 2, "topk_group": 1,
            "scoring_func": "sigmoid", "topk_method": "noaux_tc", "routed_scaling_factor": 2.5, "norm_topk_prob": true,
            "vocab_size": 512, "max_position_embeddings": 4096, "rope_theta": 10000.0,
            "rope_scaling": [
                "type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
                "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0,
            ],
            "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "num_nextn_predict_layers": 0,
            "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
        ]
    }

    /// DeepSeek-V3.2 (or GLM-5, the same layer) at test size: tiny-deepseek-v3 plus an indexer (4 heads of 32, top 8).
    static func tinyDeepseekV32(modelType: String = "deepseek_v32") -> JSONValue {
        guard case .object(var config) = tinyDeepseek() else { return tinyDeepseek() }
        config["architectures"] = [modelType == "deepseek_v32" ? "DeepseekV32ForCausalLM" : "GlmMoeDsaForCausalLM"]
        config["model_type"] = .string(modelType)
        config["index_n_heads"] = 4
        config["index_head_dim"] = 32
        config["index_topk"] = 8
        // One MTP layer, as both releases have (llama.cpp's deepseek32 / glm-dsa converters keep it).
        config["num_nextn_predict_layers"] = 1
        return .object(config)
    }

    /// Kimi-Linear at test size: KDA on layers 1, 2 and 4 (1-based), MLA without positions on layer 3.
    static func tinyKimiLinear() -> JSONValue {
        [
            "architectures": ["KimiLinearForCausalLM"], "model_type": "kimi_linear",
            "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
            "kv_lora_rank": 64, "q_lora_rank": nil, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
            "intermediate_size": 512, "moe_intermediate_size": 128, "num_experts": 8, "num_experts_per_token": 2,
            "num_shared_experts": 1, "first_k_dense_replace": 1, "num_expert_group": 1, "topk_group": 1,
            "moe_renormalize": true, "routed_scaling_factor": 2.446, "moe_router_activation_func": "sigmoid",
            "linear_attn_config": [
                "kda_layers": [1, 2, 4], "full_attn_layers": [3], "num_heads": 4, "head_dim": 64, "short_conv_kernel_size": 4,
            ],
            "vocab_size": 512, "model_max_length": 4096, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
            "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
        ]
    }

    static func tinyQwen3() -> JSONValue {
        qwen3(
            hidden: 256, layers: 2, heads: 4, ff: 512, moeFF: 128, vocab: 512, experts: 8, kvHeads: 2, headDim: 64, topK: 2, bos: 256,
            eos: 257)
    }

    static func tinyMixtral() -> JSONValue {
        mixtral(hidden: 256, layers: 2, heads: 4, kvHeads: 2, ff: 256, experts: 4, vocab: 512)
    }

    /// MiniMax-M2's block at test size: q/k norms over all heads, rotary on half of each head, sigmoid router.
    static func tinyMiniMaxM2() -> JSONValue {
        [
            "architectures": ["MiniMaxM2ForCausalLM"], "model_type": "minimax_m2",
            "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
            "rotary_dim": 32, "intermediate_size": 128, "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 512,
            "max_position_embeddings": 4096, "rope_theta": 5000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": false,
            "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
        ]
    }

    /// gpt-oss's block at test size: biases, sinks, sliding window on even layers, YaRN, fused experts (float, as
    /// transformers saves them).
    static func tinyGptOss() -> JSONValue {
        [
            "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
            "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
            "intermediate_size": 256, "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 512, "sliding_window": 16,
            "layer_types": ["sliding_attention", "full_attention"], "attention_bias": true,
            "rope_scaling": [
                "rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": false,
                "original_max_position_embeddings": 4096,
            ],
            "max_position_embeddings": 131072, "rope_theta": 150000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
            "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
        ]
    }

    /// GLM-4.5's block at test size: q/k/v biases, partial rotary, sigmoid router with groups, a shared expert, a
    /// leading dense layer and one MTP layer (kept in the GGUF as llama.cpp's converter keeps it).
    static func tinyGlm4Moe() -> JSONValue {
        [
            "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe",
            "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
            "partial_rotary_factor": 0.5, "attention_bias": true, "use_qk_norm": false,
            "intermediate_size": 512, "moe_intermediate_size": 128, "n_routed_experts": 8, "num_experts_per_tok": 2,
            "n_shared_experts": 1, "first_k_dense_replace": 1, "n_group": 1, "topk_group": 1, "routed_scaling_factor": 1.0,
            "norm_topk_prob": true, "num_nextn_predict_layers": 1, "vocab_size": 512, "max_position_embeddings": 4096,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
            "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
        ]
    }
}
