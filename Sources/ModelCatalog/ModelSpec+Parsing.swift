// config.json → ModelSpec, accepting both the layout released checkpoints ship (`rope_theta`, `rope_scaling`,
// `torch_dtype`) and the one current transformers writes (`rope_parameters`, `dtype`).
import Foundation
import TensorFormats

/// Why a config.json could not be understood.
public enum CatalogError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case unsupportedModelType(file: String, modelType: String?, supported: [String])
    case missingField(file: String, field: String)
    case invalidField(file: String, field: String, reason: String)
    case inconsistent(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): return "\(file): \(reason)"
        case let .unsupportedModelType(file, type, supported):
            return "\(file): model_type \(type.map { "\"\($0)\"" } ?? "(missing)") is not supported; supported: \(supported.joined(separator: ", "))"
        case let .missingField(file, field): return "\(file): required field \"\(field)\" is missing"
        case let .invalidField(file, field, reason): return "\(file): field \"\(field)\": \(reason)"
        case let .inconsistent(file, reason): return "\(file): \(reason)"
        }
    }
}

extension ModelSpec {
    /// Reads and parses `config.json` at `path`.
    public init(configFile path: String) throws(CatalogError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(file: path, reason: "cannot read the file")
        }
        let json: JSONValue
        do throws(JSONError) { json = try JSONParser.parse([UInt8](data)) } catch {
            throw .unreadable(file: path, reason: error.description)
        }
        try self.init(config: json, file: path)
    }

    /// Parses a config.json document. `file` names it in errors.
    public init(config root: JSONValue, file: String = "config.json") throws(CatalogError) {
        guard root.objectValue != nil else { throw .unreadable(file: file, reason: "config is not a JSON object") }
        var config = root
        var nested = false
        if let text = root["text_config"], text.objectValue != nil,
           root["hidden_size"] == nil || root["model_type"]?.stringValue == "kimi_k25" {
            config = text
            nested = true
        }
        let supported = Architecture.modelTypes.keys.sorted()
        let modelType = config["model_type"]?.stringValue ?? root["model_type"]?.stringValue
        guard let modelType, let architecture = Architecture.modelTypes[modelType] else {
            throw .unsupportedModelType(file: file, modelType: modelType, supported: supported)
        }
        let read = FieldReader(config: config, file: file)
        let hidden = try read.int("hidden_size")
        let layers = try read.int("num_hidden_layers")
        let heads = try read.int("num_attention_heads")
        self.modelType = modelType
        self.architecture = architecture
        hiddenSize = hidden
        layerCount = layers
        vocabularySize = try read.int("vocab_size")
        headCount = heads
        keyValueHeadCount = try read.optionalInt("num_key_value_heads") ?? heads
        let statedHeadDim = try read.optionalInt("head_dim")
        headDim = statedHeadDim ?? (hidden / max(heads, 1))
        headDimGiven = statedHeadDim != nil
        intermediateSize = try read.optionalInt("intermediate_size") ?? 0
        rmsNormEpsilon = try read.optionalDouble("rms_norm_eps") ?? 1e-6
        maxPositionEmbeddings = try read.optionalInt("max_position_embeddings") ?? 0
        tieWordEmbeddings = try read.optionalBool("tie_word_embeddings") ?? false
        dtype = config["dtype"]?.stringValue ?? config["torch_dtype"]?.stringValue ?? root["dtype"]?.stringValue ?? root["torch_dtype"]?.stringValue
        nestedTextConfig = nested
        (ropeTheta, ropeScaling) = try ModelSpec.parseRope(read)
        do throws(FormatError) {
            quantization = try SourceQuantization.parse(config["quantization_config"] ?? root["quantization_config"])
        } catch {
            throw .invalidField(file: file, field: "quantization_config", reason: error.description)
        }

        switch architecture {
        case .deepseekV3:
            latentAttention = LatentAttention(
                queryRank: try read.optionalInt("q_lora_rank"),
                keyValueRank: try read.int("kv_lora_rank"),
                noPositionHeadDim: try read.int("qk_nope_head_dim"),
                ropeHeadDim: try read.int("qk_rope_head_dim"),
                valueHeadDim: try read.int("v_head_dim"))
            expertIntermediateSize = try read.int("moe_intermediate_size")
            routedExpertCount = try read.int("n_routed_experts")
            sharedExpertCount = try read.optionalInt("n_shared_experts") ?? 0
            expertsPerToken = try read.int("num_experts_per_tok")
            let firstDense = try read.optionalInt("first_k_dense_replace") ?? 0
            let frequency = max(try read.optionalInt("moe_layer_freq") ?? 1, 1)
            denseLayers = Set((0..<layers).filter { $0 < firstDense || $0 % frequency != 0 })
            routerScoring = RouterScoring(rawValue: config["scoring_func"]?.stringValue ?? "sigmoid") ?? .sigmoid
            expertGroupCount = try read.optionalInt("n_group") ?? 1
            expertGroupsUsed = try read.optionalInt("topk_group") ?? 1
            routedScalingFactor = try read.optionalDouble("routed_scaling_factor") ?? 1
            normalizeTopKProbabilities = try read.optionalBool("norm_topk_prob") ?? true
            nextTokenPredictionLayers = try read.optionalInt("num_nextn_predict_layers") ?? 0
        case .qwen3Moe:
            latentAttention = nil
            expertIntermediateSize = try read.int("moe_intermediate_size")
            if let experts = try read.optionalInt("num_experts") { routedExpertCount = experts } else { routedExpertCount = try read.int("num_local_experts") }
            sharedExpertCount = 0
            expertsPerToken = try read.int("num_experts_per_tok")
            let step = max(try read.optionalInt("decoder_sparse_step") ?? 1, 1)
            let mlpOnly = Set(config["mlp_only_layers"]?.arrayValue?.compactMap(\.intValue) ?? [])
            denseLayers = Set((0..<layers).filter { mlpOnly.contains($0) || ($0 + 1) % step != 0 })
            routerScoring = .softmax
            expertGroupCount = 1
            expertGroupsUsed = 1
            routedScalingFactor = 1
            normalizeTopKProbabilities = try read.optionalBool("norm_topk_prob") ?? false
            nextTokenPredictionLayers = 0
            queryKeyNorm = true
        case .glm4Moe:
            latentAttention = nil
            expertIntermediateSize = try read.int("moe_intermediate_size")
            routedExpertCount = try read.int("n_routed_experts")
            sharedExpertCount = try read.optionalInt("n_shared_experts") ?? 0
            expertsPerToken = try read.int("num_experts_per_tok")
            let firstDense = try read.optionalInt("first_k_dense_replace") ?? 0
            denseLayers = Set(0..<min(firstDense, layers))
            routerScoring = .sigmoid
            expertGroupCount = try read.optionalInt("n_group") ?? 1
            expertGroupsUsed = try read.optionalInt("topk_group") ?? 1
            routedScalingFactor = try read.optionalDouble("routed_scaling_factor") ?? 1
            normalizeTopKProbabilities = try read.optionalBool("norm_topk_prob") ?? true
            nextTokenPredictionLayers = try read.optionalInt("num_nextn_predict_layers") ?? 0
            attentionBias = try read.optionalBool("attention_bias") ?? false
            queryKeyNorm = try read.optionalBool("use_qk_norm") ?? false
            // llama.cpp's converter assumes 0.5 when the key is absent (LCPP conversion/glm.py).
            partialRotaryFactor = try read.optionalDouble("partial_rotary_factor") ?? config["rope_parameters"]?["partial_rotary_factor"]?.doubleValue ?? 0.5
        case .mixtral, .gptOss:
            // Every layer MoE, softmax router, no shared experts. gpt-oss takes the top-k of the raw router logits,
            // then a softmax over the k selected (OSS model.py MLPBlock).
            latentAttention = nil
            expertIntermediateSize = try read.int("intermediate_size")
            // gpt-oss's original config names these num_experts / experts_per_token; errors name the HF keys.
            let original = architecture == .gptOss
            routedExpertCount = try read.int(original && config["num_local_experts"] == nil ? "num_experts" : "num_local_experts")
            sharedExpertCount = 0
            expertsPerToken = try read.int(original && config["num_experts_per_tok"] == nil ? "experts_per_token" : "num_experts_per_tok")
            denseLayers = []
            routerScoring = .softmax
            expertGroupCount = 1
            expertGroupsUsed = 1
            routedScalingFactor = 1
            normalizeTopKProbabilities = true
            nextTokenPredictionLayers = 0
            guard architecture == .gptOss else { break }
            attentionBias = try read.optionalBool("attention_bias") ?? true
            if let window = try read.optionalInt("sliding_window"), window > 0 {
                slidingWindow = window
                if let types = config["layer_types"]?.arrayValue {
                    guard types.count == layers else {
                        throw .inconsistent(file: file, reason: "layer_types lists \(types.count) layers, num_hidden_layers is \(layers)")
                    }
                    slidingWindowLayers = Set(types.indices.filter { types[$0].stringValue == "sliding_attention" })
                } else {
                    // transformers' default (and llama.cpp's, period 2): even layers slide, odd layers are full.
                    slidingWindowLayers = Set((0..<layers).filter { $0 % 2 == 0 })
                }
            }
        }
        guard expertsPerToken <= routedExpertCount, expertsPerToken > 0 else {
            throw .inconsistent(file: file, reason: "num_experts_per_tok \(expertsPerToken) must be in 1…\(routedExpertCount)")
        }
    }

    private static func parseRope(_ read: FieldReader) throws(CatalogError) -> (Double, RopeScaling?) {
        let parameters = read.config["rope_parameters"]
        let theta = try read.optionalDouble("rope_theta") ?? parameters?["rope_theta"]?.doubleValue ?? 10_000
        var scaling: JSONValue? = read.config["rope_scaling"]
        if scaling == nil || scaling?.isNull == true, let parameters, parameters.objectValue != nil {
            scaling = parameters
        }
        guard let scaling, scaling.objectValue != nil else { return (theta, nil) }
        let type = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? "default"
        if type == "default" { return (theta, nil) }
        guard let factor = scaling["factor"]?.doubleValue else {
            throw .invalidField(file: read.file, field: "rope_scaling.factor", reason: "missing for rope type \"\(type)\"")
        }
        return (theta, RopeScaling(
            type: type, factor: factor,
            originalMaxPositionEmbeddings: scaling["original_max_position_embeddings"]?.intValue,
            betaFast: scaling["beta_fast"]?.doubleValue, betaSlow: scaling["beta_slow"]?.doubleValue,
            mscale: scaling["mscale"]?.doubleValue, mscaleAllDim: scaling["mscale_all_dim"]?.doubleValue))
    }
}

/// Typed access to config fields with errors that name the field.
struct FieldReader {
    let config: JSONValue
    let file: String

    func int(_ key: String) throws(CatalogError) -> Int {
        guard let value = config[key], !value.isNull else { throw .missingField(file: file, field: key) }
        guard let int = value.intValue, int >= 0 else { throw .invalidField(file: file, field: key, reason: "expected a non-negative integer, found \(value.serialized())") }
        return int
    }

    func optionalInt(_ key: String) throws(CatalogError) -> Int? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let int = value.intValue, int >= 0 else { throw .invalidField(file: file, field: key, reason: "expected a non-negative integer, found \(value.serialized())") }
        return int
    }

    func optionalDouble(_ key: String) throws(CatalogError) -> Double? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let double = value.doubleValue, double.isFinite else { throw .invalidField(file: file, field: key, reason: "expected a number, found \(value.serialized())") }
        return double
    }

    func optionalBool(_ key: String) throws(CatalogError) -> Bool? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let bool = value.boolValue else { throw .invalidField(file: file, field: key, reason: "expected true or false, found \(value.serialized())") }
        return bool
    }
}
