// GGUF header → ModelSpec: llama.cpp's hyper-parameter keys (formats.md §5.4) turned back into the config.json
// fields they came from, so `moeq plan` can read a GGUF without its checkpoint.
import TensorFormats

extension ModelSpec {
    /// The spec of a GGUF written by llama.cpp's converter or by `moeq convert` (deepseek2, qwen3moe, llama with
    /// experts, gpt-oss, glm4moe). Reads the header only.
    public init(gguf file: GGUFFile) throws(CatalogError) {
        let path = file.path
        guard let arch = file["general.architecture"]?.stringValue else { throw .missingField(file: path, field: "general.architecture") }
        func int(_ key: String) -> Int? { file["\(arch).\(key)"]?.integerValue }
        func double(_ key: String) -> Double? {
            switch file["\(arch).\(key)"] {
            case .float32(let v)?: Double(v)
            case .float64(let v)?: v
            default: nil
            }
        }
        func required(_ key: String) throws(CatalogError) -> Int {
            guard let value = int(key) else { throw .missingField(file: path, field: "\(arch).\(key)") }
            return value
        }
        let blocks = try required("block_count")
        let hidden = try required("embedding_length")
        let heads = try required("attention.head_count")
        let vocabulary = int("vocab_size") ?? file.tensor(named: "token_embd.weight")?.dimensions.last
        guard let vocabulary else { throw .missingField(file: path, field: "\(arch).vocab_size") }
        var config: [(String, JSONValue)] = [
            ("hidden_size", .integer(Int64(hidden))), ("num_attention_heads", .integer(Int64(heads))),
            ("vocab_size", .integer(Int64(vocabulary))), ("max_position_embeddings", .integer(Int64(int("context_length") ?? 0))),
            ("rope_theta", .double(double("rope.freq_base") ?? 10_000)),
            ("rms_norm_eps", .double(double("attention.layer_norm_rms_epsilon") ?? 1e-6)),
            ("tie_word_embeddings", .bool(file.tensor(named: "output.weight") == nil)),
            ("num_experts_per_tok", .integer(Int64(try required("expert_used_count")))),
        ]
        let experts = try required("expert_count")
        let kvHeads = int("attention.head_count_kv") ?? heads
        let expertWidth = int("expert_feed_forward_length")
        var layers = blocks
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        switch arch {
        case "deepseek2":
            let rope = try required("rope.dimension_count")
            // GGUFs from before llama.cpp's MLA split state only key_length / value_length (nope + rope, v).
            guard let keyMLA = int("attention.key_length_mla") ?? int("attention.key_length") else { throw .missingField(file: path, field: "\(arch).attention.key_length_mla") }
            config.append(("model_type", "deepseek_v3"))
            add("num_key_value_heads", heads)
            add("q_lora_rank", int("attention.q_lora_rank"))
            add("kv_lora_rank", try required("attention.kv_lora_rank"))
            add("qk_rope_head_dim", rope)
            add("qk_nope_head_dim", keyMLA - rope)
            add("v_head_dim", int("attention.value_length_mla") ?? int("attention.value_length"))
            add("intermediate_size", int("feed_forward_length"))
            add("moe_intermediate_size", expertWidth)
            add("n_routed_experts", experts)
            add("n_shared_experts", int("expert_shared_count"))
            add("first_k_dense_replace", int("leading_dense_block_count"))
            add("n_group", int("expert_group_count"))
            add("topk_group", int("expert_group_used_count"))
            if let scale = double("expert_weights_scale") { config.append(("routed_scaling_factor", .double(scale))) }
        case "qwen3moe":
            config.append(("model_type", "qwen3_moe"))
            add("num_key_value_heads", kvHeads)
            add("head_dim", int("attention.key_length"))
            add("intermediate_size", int("feed_forward_length"))
            add("moe_intermediate_size", expertWidth)
            add("num_experts", experts)
        case "llama" where experts > 0:
            config.append(("model_type", "mixtral"))
            add("num_key_value_heads", kvHeads)
            add("head_dim", int("attention.key_length"))
            add("intermediate_size", expertWidth ?? int("feed_forward_length"))
            add("num_local_experts", experts)
        case "gpt-oss":
            config.append(("model_type", "gpt_oss"))
            add("num_key_value_heads", kvHeads)
            add("head_dim", int("attention.key_length"))
            add("intermediate_size", expertWidth)
            add("num_local_experts", experts)
            add("sliding_window", int("attention.sliding_window"))
        case "glm4moe":
            let nextN = int("nextn_predict_layers") ?? 0
            layers = blocks - nextN
            let keyLength = int("attention.key_length") ?? hidden / max(heads, 1)
            config.append(("model_type", "glm4_moe"))
            add("num_key_value_heads", kvHeads)
            add("head_dim", keyLength)
            add("intermediate_size", int("feed_forward_length"))
            add("moe_intermediate_size", expertWidth)
            add("n_routed_experts", experts)
            add("n_shared_experts", int("expert_shared_count"))
            add("first_k_dense_replace", int("leading_dense_block_count"))
            add("num_nextn_predict_layers", nextN)
            if let rope = int("rope.dimension_count") { config.append(("partial_rotary_factor", .double(Double(rope) / Double(keyLength)))) }
            if let scale = double("expert_weights_scale") { config.append(("routed_scaling_factor", .double(scale))) }
            config.append(("attention_bias", .bool(file.tensor(named: "blk.0.attn_q.bias") != nil)))
            config.append(("use_qk_norm", .bool(file.tensor(named: "blk.0.attn_q_norm.weight") != nil)))
        default:
            throw .unsupportedModelType(file: path, modelType: "\(arch) (GGUF general.architecture)",
                                        supported: ["deepseek2", "qwen3moe", "llama (with experts)", "gpt-oss", "glm4moe"])
        }
        config.append(("num_hidden_layers", .integer(Int64(layers))))
        try self.init(config: .object(JSONObject(config)), file: path)
    }
}
