// gpt-oss: GQA with q/k/v/o biases and per-head sinks, alternating sliding-window layers (even layers slide), YaRN
// rope, a router with a bias (softmax over the top-k logits), experts fused per layer with biases and a clamped
// SwiGLU. The release stores the experts MXFP4 (`_blocks` / `_scales`, outputs first, gate and up rows interleaved);
// transformers' float parameters are inputs first ([E, H, 2I], gate and up columns interleaved). GGUF: llama.cpp's
// `gpt-oss` (LCPP conversion/gpt_oss.py `GptOssModel`): gate and up split, every expert tensor [out, in].
import TensorFormats

extension ArchitectureTable {
    public static let gptOss = ArchitectureTable(
        architecture: .gptOss, modelTypes: ["gpt_oss"], ggufArchitecture: "gpt-oss", isConvertible: true, namePrefixes: [],
        checkpointTensors: GptOss.checkpointTensors, fileTensors: GptOss.fileTensors,
        hyperParameters: GptOss.hyperParameters, readConfig: GptOss.readConfig, configFromGGUF: GptOss.configFromGGUF)
}

enum GptOss {
    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        let a = HFNames.attention, mlp = HFNames.mlp
        var t = CheckpointTensor.leading(s) + [.attentionNorm(.main)]
        t += CheckpointTensor.groupedQueryAttention(s, .main)
        t += [
            CheckpointTensor(.attention(.output), a + "o_proj.bias", .layer(.main), part: .bias) { [$0.hiddenSize] },
            CheckpointTensor(.attention(.sinks), a + "sinks", .layer(.main)) { [$0.headCount] },
            .feedForwardNorm(.main),
            CheckpointTensor(.router, mlp + "router.weight", .layer(.moe)) { [$0.routedExpertCount, $0.hiddenSize] },
            CheckpointTensor(.router, mlp + "router.bias", .layer(.moe), part: .bias) { [$0.routedExpertCount] },
            // Logical shapes of the fused expert tensors: outputs first as the release's MXFP4 `_blocks` / `_scales`
            // decode, inputs first as transformers saves float parameters.
            // Not nn.Linear weights (FP8 / INT4 sources do not quantize them; the release's are MXFP4).
            CheckpointTensor(.routedExperts(.gateUp), mlp + "experts.gate_up_proj", .layer(.moe)) {
                let (e, out, h) = ($0.routedExpertCount, 2 * $0.expertIntermediateSize, $0.hiddenSize)
                return $0.quantization == .mxfp4 ? [e, out, h] : [e, h, out]
            },
            CheckpointTensor(.routedExperts(.gateUp), mlp + "experts.gate_up_proj_bias", .layer(.moe), part: .bias) {
                [$0.routedExpertCount, 2 * $0.expertIntermediateSize]
            },
            CheckpointTensor(.routedExperts(.down), mlp + "experts.down_proj", .layer(.moe)) {
                let (e, h, i) = ($0.routedExpertCount, $0.hiddenSize, $0.expertIntermediateSize)
                return $0.quantization == .mxfp4 ? [e, h, i] : [e, i, h]
            },
            CheckpointTensor(.routedExperts(.down), mlp + "experts.down_proj_bias", .layer(.moe), part: .bias) {
                [$0.routedExpertCount, $0.hiddenSize]
            },
        ]
        return t + CheckpointTensor.trailing(s)
    }

    static func fileTensors(_ s: ModelSpec) -> [FileTensor] {
        let b = GGUFNames.block
        var t = FileTensor.leading() + [.attentionNorm(.main)]
        t += FileTensor.groupedQueryAttention(s, .main)
        t += [
            FileTensor(.attention(.output), b + "attn_output.bias", .layer(.main), part: .bias) { [$0.hiddenSize] },
            FileTensor(.attention(.sinks), b + "attn_sinks.weight", .layer(.main)) { [$0.headCount] },
            .feedForwardNorm(.main, name: "post_attention_norm.weight"),
            .router(.moe),
            FileTensor(.router, b + "ffn_gate_inp.bias", .layer(.moe), part: .bias) { [$0.routedExpertCount] },
        ]
        // The fused gate_up tensor's interleaved outputs split into ffn_gate_exps / ffn_up_exps; each keeps its bias.
        for (projection, assembly) in [
            (Projection.gate, Assembly.fusedExperts(.routedExperts(.gateUp), stride: 2, phase: 0)),
            (.up, .fusedExperts(.routedExperts(.gateUp), stride: 2, phase: 1)),
            (.down, .fusedExperts(.routedExperts(.down), stride: 1, phase: 0)),
        ] {
            let down = projection == .down
            t.append(
                FileTensor(.routedExperts(projection), b + "ffn_\(projection.rawValue)_exps.weight", .layer(.moe), from: assembly) {
                    down
                        ? [$0.expertIntermediateSize, $0.hiddenSize, $0.routedExpertCount]
                        : [$0.hiddenSize, $0.expertIntermediateSize, $0.routedExpertCount]
                })
            t.append(
                FileTensor(
                    .routedExperts(projection), b + "ffn_\(projection.rawValue)_exps.bias", .layer(.moe), part: .bias, from: assembly
                ) {
                    [down ? $0.hiddenSize : $0.expertIntermediateSize, $0.routedExpertCount]
                })
        }
        return t + FileTensor.trailing()
    }

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        var kv = ArchitectureTable.commonHyperParameters(
            s, blocks: s.layerCount, feedForward: s.intermediateSize, writesVocabularySize: true)
        kv += [
            (.keyLength, .uint32(UInt32(s.headDim))), (.valueLength, .uint32(UInt32(s.headDim))),
            (.expertFeedForwardLength, .uint32(UInt32(s.expertIntermediateSize))),
        ]
        if let window = s.slidingWindow { kv.append((.slidingWindow, .uint32(UInt32(window)))) }
        return kv
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        var config: [(String, JSONValue)] = [("model_type", "gpt_oss")]
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("num_key_value_heads", h.int(.headCountKeyValue))
        add("head_dim", h.int(.keyLength))
        add("intermediate_size", h.int(.expertFeedForwardLength))
        add("num_local_experts", h.int(.expertCount))
        add("sliding_window", h.int(.slidingWindow))
        return config
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        // The top-k of the raw router logits, then a softmax over the k selected (OSS model.py MLPBlock).
        s.expertIntermediateSize = try read.int("intermediate_size", in: ConfigLimits.feedForwardWidth)
        // gpt-oss's original config names these num_experts / experts_per_token; errors name the HF keys.
        s.routedExpertCount = try read.int(read["num_local_experts"] == nil ? "num_experts" : "num_local_experts", in: ConfigLimits.experts)
        s.expertsPerToken = try read.int(
            read["num_experts_per_tok"] == nil ? "experts_per_token" : "num_experts_per_tok", in: ConfigLimits.experts)
        s.routerScoring = .softmax
        s.normalizeTopKProbabilities = true
        s.attentionBias = try read.optionalBool("attention_bias") ?? true
        // transformers' defaults (llama.cpp hard-codes the same two constants).
        s.clampedSwiGLU = ClampedSwiGLU(
            alpha: try read.optionalDouble("swiglu_alpha", in: 1e-3...1e3) ?? 1.702,
            limit: try read.optionalDouble("swiglu_limit", in: 1e-3...1e6) ?? 7)
        let layers = s.layerCount
        guard let window = try read.optionalInt("sliding_window", in: 0...ConfigLimits.context.upperBound), window > 0 else { return }
        s.slidingWindow = window
        if let types = read["layer_types"], !types.isNull {
            guard let list = types.arrayValue, list.count == layers else {
                throw .inconsistent(file: read.file, reason: "layer_types must list num_hidden_layers (\(layers)) entries")
            }
            var sliding = Set<Int>()
            for (i, type) in list.enumerated() {
                switch type.stringValue {
                case "sliding_attention": sliding.insert(i)
                case "full_attention": break
                default:
                    throw .invalidField(
                        file: read.file, field: "layer_types[\(i)]",
                        reason: "\(type.serialized()) is not \"sliding_attention\" or \"full_attention\"")
                }
            }
            s.slidingWindowLayers = sliding
        } else {
            // transformers' default (and llama.cpp's, period 2): even layers slide, odd layers are full.
            s.slidingWindowLayers = Set((0..<layers).filter { $0 % 2 == 0 })
        }
    }
}
