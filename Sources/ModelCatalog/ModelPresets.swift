// config.json documents of real MoE models (released-checkpoint layout) and tiny test models, for `synth`.
import TensorFormats

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
}

public enum ModelPresets {
    /// Presets by name. Real shapes from formats.md §1 (DeepSeek-V3 and Kimi K2 vendor configs, Qwen3, Mixtral).
    public static let all: [ModelPreset] = [
        ModelPreset(name: "kimi-k2", architecture: .deepseekV3, config: deepseekFamily(
            modelType: "kimi_k2", heads: 64, routed: 384, firstDense: 1, groups: 1, groupsUsed: 1, scaling: 2.827,
            vocab: 163840, maxPositions: 131072, theta: 50000, yarnFactor: 32, betaFast: 1, nextN: 0, bos: 163584, eos: 163585),
            nativeDType: "fp8", shardBytes: 16 << 30, source: "Kimi-K2-Instruct config (formats.md §1.1)"),
        ModelPreset(name: "deepseek-v3", architecture: .deepseekV3, config: deepseekFamily(
            modelType: "deepseek_v3", heads: 128, routed: 256, firstDense: 3, groups: 8, groupsUsed: 4, scaling: 2.5,
            vocab: 129280, maxPositions: 163840, theta: 10000, yarnFactor: 40, betaFast: 32, nextN: 1, bos: 0, eos: 1),
            nativeDType: "fp8", shardBytes: 4_300_000_000, source: "DeepSeek-V3 config (formats.md §1.1)"),
        ModelPreset(name: "qwen3-235b-a22b", architecture: .qwen3Moe, config: qwen3(hidden: 4096, layers: 94, heads: 64, ff: 12288, moeFF: 1536),
                    nativeDType: "bf16", shardBytes: 4_000_000_000, source: "Qwen3-235B-A22B (formats.md §1.2)"),
        ModelPreset(name: "qwen3-30b-a3b", architecture: .qwen3Moe, config: qwen3(hidden: 2048, layers: 48, heads: 32, ff: 6144, moeFF: 768),
                    nativeDType: "bf16", shardBytes: 4_000_000_000, source: "Qwen3-30B-A3B (formats.md §1.2)"),
        ModelPreset(name: "mixtral-8x7b", architecture: .mixtral, config: mixtral(hidden: 4096, layers: 32, heads: 32, kvHeads: 8, ff: 14336, experts: 8, vocab: 32000),
                    nativeDType: "bf16", shardBytes: 5_000_000_000, source: "Mixtral-8x7B-v0.1 (formats.md §1.3)"),
        ModelPreset(name: "tiny-deepseek-v3", architecture: .deepseekV3, config: tinyDeepseek(),
                    nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(name: "tiny-qwen3-moe", architecture: .qwen3Moe, config: tinyQwen3(),
                    nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
        ModelPreset(name: "tiny-mixtral", architecture: .mixtral, config: tinyMixtral(),
                    nativeDType: "bf16", shardBytes: 2_000_000, source: "test model"),
    ]

    /// The preset for `name` and `architecture` (`tiny` resolves per architecture).
    public static func named(_ name: String, architecture: Architecture) -> ModelPreset? {
        let key = name == "tiny" ? "tiny-" + architecture.rawValue.replacingOccurrences(of: "_", with: "-") : name
        return all.first { $0.name == key && $0.architecture == architecture }
    }

    public static var names: [String] { ["tiny"] + all.map(\.name).filter { !$0.hasPrefix("tiny-") } }

    // MARK: - Families

    static func deepseekFamily(modelType: String, heads: Int, routed: Int, firstDense: Int, groups: Int, groupsUsed: Int,
                               scaling: Double, vocab: Int, maxPositions: Int, theta: Double, yarnFactor: Double,
                               betaFast: Double, nextN: Int, bos: Int, eos: Int) -> JSONValue {
        [
            "architectures": ["DeepseekV3ForCausalLM"], "model_type": .string(modelType),
            "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": .integer(Int64(heads)),
            "num_key_value_heads": .integer(Int64(heads)), "q_lora_rank": 1536, "kv_lora_rank": 512,
            "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "intermediate_size": 18432,
            "moe_intermediate_size": 2048, "n_routed_experts": .integer(Int64(routed)), "num_experts_per_tok": 8,
            "n_shared_experts": 1, "first_k_dense_replace": .integer(Int64(firstDense)), "moe_layer_freq": 1,
            "n_group": .integer(Int64(groups)), "topk_group": .integer(Int64(groupsUsed)), "scoring_func": "sigmoid",
            "topk_method": "noaux_tc", "routed_scaling_factor": .double(scaling), "norm_topk_prob": true,
            "vocab_size": .integer(Int64(vocab)), "max_position_embeddings": .integer(Int64(maxPositions)),
            "rope_theta": .double(theta),
            "rope_scaling": ["type": "yarn", "factor": .double(yarnFactor), "original_max_position_embeddings": 4096,
                             "beta_fast": .double(betaFast), "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0],
            "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "num_nextn_predict_layers": .integer(Int64(nextN)),
            "bos_token_id": .integer(Int64(bos)), "eos_token_id": .integer(Int64(eos)), "torch_dtype": "bfloat16",
            "quantization_config": ["activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]],
        ]
    }

    static func qwen3(hidden: Int, layers: Int, heads: Int, ff: Int, moeFF: Int, vocab: Int = 151936, experts: Int = 128,
                      kvHeads: Int = 4, headDim: Int = 128, topK: Int = 8, bos: Int = 151643, eos: Int = 151645) -> JSONValue {
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
            "rope_scaling": ["type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
                             "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0],
            "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "num_nextn_predict_layers": 0,
            "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
        ]
    }

    static func tinyQwen3() -> JSONValue {
        qwen3(hidden: 256, layers: 2, heads: 4, ff: 512, moeFF: 128, vocab: 512, experts: 8, kvHeads: 2, headDim: 64, topK: 2, bos: 256, eos: 257)
    }

    static func tinyMixtral() -> JSONValue {
        mixtral(hidden: 256, layers: 2, heads: 4, kvHeads: 2, ff: 256, experts: 4, vocab: 512)
    }
}
