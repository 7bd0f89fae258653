// config.json → ModelSpec, accepting both the layout released checkpoints ship (`rope_theta`, `rope_scaling`,
// `torch_dtype`) and the one current transformers writes (`rope_parameters`, `dtype`). Every number is range-checked
// here, once, so no later size, product or UInt32 key can overflow or allocate from an absurd config.
import Foundation
import TensorFormats

/// Why a config.json (or the spec a GGUF header describes) could not be understood.
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
            return
                """
                \(file): model_type \(type.map { "\"\($0)\"" } ?? "(missing)") is not supported; supported: \
                \(supported.joined(separator: ", "))
                """
        case let .missingField(file, field): return "\(file): required field \"\(field)\" is missing"
        case let .invalidField(file, field, reason): return "\(file): field \"\(field)\": \(reason)"
        case let .inconsistent(file, reason): return "\(file): \(reason)"
        }
    }
}

/// The plausible range of every config number: wide enough for every released MoE (and 10× beyond), narrow enough
/// that no product of them overflows and nothing sized from them can exhaust memory before a checkpoint disagrees.
public enum ConfigLimits {
    public static let layers = 1...1024
    public static let width = 1...65_536
    public static let feedForwardWidth = 1...262_144
    public static let vocabulary = 1...4_194_304
    public static let heads = 1...1024
    public static let headDim = 1...4096
    public static let experts = 1...2048
    public static let sharedExperts = 0...64
    public static let nextTokenPredictionLayers = 0...16
    public static let rank = 1...65_536
    public static let context = 0...268_435_456
    public static let ropeTheta = 1e-3...1e12
    public static let ropeFactor = 1e-3...1e6
    public static let epsilon = 1e-30...0.5
    public static let scalingFactor = 1e-6...1e4
}

extension ModelSpec {
    /// Reads and parses `config.json` at `path`.
    public init(configFile path: String) throws(CatalogError) {
        let json: JSONValue
        do throws(JSONError) { json = try JSONParser.parse(file: path) } catch {
            throw .unreadable(file: path, reason: error.reasonWithoutFile)
        }
        try self.init(config: json, file: path)
    }

    /// Parses a config.json document. `file` names it in errors.
    public init(config root: JSONValue, file: String = "config.json") throws(CatalogError) {
        guard root.objectValue != nil else { throw .unreadable(file: file, reason: "config is not a JSON object") }
        var config = root
        var nested = false
        if let text = root["text_config"], text.objectValue != nil,
            root["hidden_size"] == nil || root["model_type"]?.stringValue == "kimi_k25"
        {
            config = text
            nested = true
        }
        let supported = Architecture.modelTypes.keys.sorted()
        let modelType = config["model_type"]?.stringValue ?? root["model_type"]?.stringValue
        guard let modelType, let architecture = Architecture.modelTypes[modelType] else {
            throw .unsupportedModelType(file: file, modelType: modelType, supported: supported)
        }
        let read = ConfigReader(config: config, file: file)
        self.init()
        self.modelType = modelType
        self.architecture = architecture
        hiddenSize = try read.int("hidden_size", in: ConfigLimits.width)
        layerCount = try read.int("num_hidden_layers", in: ConfigLimits.layers)
        vocabularySize = try read.int("vocab_size", in: ConfigLimits.vocabulary)
        headCount = try read.int("num_attention_heads", in: ConfigLimits.heads)
        keyValueHeadCount = try read.optionalInt("num_key_value_heads", in: 1...headCount) ?? headCount
        guard headCount % keyValueHeadCount == 0 else {
            throw .invalidField(
                file: file, field: "num_key_value_heads",
                reason: "\(keyValueHeadCount) does not divide num_attention_heads \(headCount) (each key/value head serves a whole group)")
        }
        let statedHeadDim = try read.optionalInt("head_dim", in: ConfigLimits.headDim)
        headDim = statedHeadDim ?? max(hiddenSize / headCount, 1)
        headDimGiven = statedHeadDim != nil
        intermediateSize = try read.optionalInt("intermediate_size", in: 0...ConfigLimits.feedForwardWidth.upperBound) ?? 0
        rmsNormEpsilon = try read.optionalDouble("rms_norm_eps", in: ConfigLimits.epsilon) ?? 1e-6
        maxPositionEmbeddings = try read.optionalInt("max_position_embeddings", in: ConfigLimits.context) ?? 0
        tieWordEmbeddings = try read.optionalBool("tie_word_embeddings") ?? false
        dtype =
            config["dtype"]?.stringValue ?? config["torch_dtype"]?.stringValue ?? root["dtype"]?.stringValue
            ?? root["torch_dtype"]?.stringValue
        nestedTextConfig = nested
        (ropeTheta, ropeScaling) = try ModelSpec.parseRope(read)
        do throws(FormatError) {
            quantization = try SourceQuantization.parse(config["quantization_config"] ?? root["quantization_config"])
        } catch {
            throw .invalidField(file: file, field: "quantization_config", reason: error.description)
        }
        try architecture.table.readConfig(&self, read)
        try checkConsistency(file: file)
    }

    /// Cross-field rules no single range can state.
    private func checkConsistency(file: String) throws(CatalogError) {
        guard (1...routedExpertCount).contains(expertsPerToken) else {
            throw .inconsistent(
                file: file, reason: "num_experts_per_tok \(expertsPerToken) must be in 1…\(routedExpertCount) (the routed experts)")
        }
        guard expertGroupCount >= 1, routedExpertCount % expertGroupCount == 0 else {
            throw .inconsistent(file: file, reason: "n_group \(expertGroupCount) must divide the \(routedExpertCount) routed experts")
        }
        guard (1...expertGroupCount).contains(expertGroupsUsed) else {
            throw .inconsistent(file: file, reason: "topk_group \(expertGroupsUsed) must be in 1…\(expertGroupCount) (n_group)")
        }
        guard expertsPerToken <= expertGroupsUsed * (routedExpertCount / expertGroupCount) else {
            throw .inconsistent(
                file: file,
                reason: "num_experts_per_tok \(expertsPerToken) exceeds the experts of the topk_group \(expertGroupsUsed) groups kept")
        }
        if let mla = latentAttention, let rope = ropeScaling, rope.type == "yarn", mla.ropeHeadDim % 2 != 0 {
            throw .invalidField(file: file, field: "qk_rope_head_dim", reason: "\(mla.ropeHeadDim) must be even (rotary pairs)")
        }
        if latentAttention == nil, headDim % 2 != 0 {
            throw .invalidField(file: file, field: "head_dim", reason: "\(headDim) must be even (rotary pairs)")
        }
    }

    private static func parseRope(_ read: ConfigReader) throws(CatalogError) -> (Double, RopeScaling?) {
        let parameters = read.config["rope_parameters"]
        var theta = try read.optionalDouble("rope_theta", in: ConfigLimits.ropeTheta)
        if theta == nil, let parameters, parameters.objectValue != nil {
            theta = try ConfigReader(config: parameters, file: read.file, prefix: "rope_parameters.").optionalDouble(
                "rope_theta", in: ConfigLimits.ropeTheta)
        }
        var scaling: JSONValue? = read.config["rope_scaling"]
        var field = "rope_scaling."
        if scaling == nil || scaling?.isNull == true, let parameters, parameters.objectValue != nil {
            scaling = parameters
            field = "rope_parameters."
        }
        guard let scaling, scaling.objectValue != nil else { return (theta ?? 10_000, nil) }
        let type = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? "default"
        if type == "default" { return (theta ?? 10_000, nil) }
        let sub = ConfigReader(config: scaling, file: read.file, prefix: field)
        guard let factor = try sub.optionalDouble("factor", in: ConfigLimits.ropeFactor) else {
            throw .invalidField(file: read.file, field: field + "factor", reason: "missing for rope type \"\(type)\"")
        }
        return (
            theta ?? 10_000,
            RopeScaling(
                type: type, factor: factor,
                originalMaxPositionEmbeddings: try sub.optionalInt("original_max_position_embeddings", in: ConfigLimits.context),
                betaFast: try sub.optionalDouble("beta_fast", in: -1e6...1e6),
                betaSlow: try sub.optionalDouble("beta_slow", in: -1e6...1e6),
                mscale: try sub.optionalDouble("mscale", in: -1e6...1e6),
                mscaleAllDim: try sub.optionalDouble("mscale_all_dim", in: -1e6...1e6),
                truncate: try sub.optionalBool("truncate") ?? true)
        )
    }
}

/// Typed, range-checked access to config fields; every error names the file, the field, the value and the range.
public struct ConfigReader: Sendable {
    public let config: JSONValue
    public let file: String
    /// Printed before field names (`rope_parameters.`).
    public var prefix = ""

    public init(config: JSONValue, file: String, prefix: String = "") {
        self.config = config
        self.file = file
        self.prefix = prefix
    }

    public subscript(key: String) -> JSONValue? { config[key] }

    private func invalid(_ key: String, _ reason: String) -> CatalogError { .invalidField(file: file, field: prefix + key, reason: reason) }

    public func int(_ key: String, in range: ClosedRange<Int>) throws(CatalogError) -> Int {
        guard let value = try optionalInt(key, in: range) else { throw .missingField(file: file, field: prefix + key) }
        return value
    }

    public func optionalInt(_ key: String, in range: ClosedRange<Int>) throws(CatalogError) -> Int? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let int = value.intValue else {
            throw invalid(key, "expected an integer in \(range.lowerBound)…\(range.upperBound), found \(value.serialized())")
        }
        guard range.contains(int) else {
            throw invalid(key, "\(int) is outside the allowed range \(range.lowerBound)…\(range.upperBound)")
        }
        return int
    }

    public func optionalDouble(_ key: String, in range: ClosedRange<Double>) throws(CatalogError) -> Double? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let double = value.doubleValue, double.isFinite else { throw invalid(key, "expected a number, found \(value.serialized())") }
        guard range.contains(double) else {
            throw invalid(key, "\(double) is outside the allowed range \(range.lowerBound)…\(range.upperBound)")
        }
        return double
    }

    public func optionalBool(_ key: String) throws(CatalogError) -> Bool? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let bool = value.boolValue else { throw invalid(key, "expected true or false, found \(value.serialized())") }
        return bool
    }

    /// A string field whose value must be one of `allowed`.
    public func optionalChoice(_ key: String, _ allowed: [String]) throws(CatalogError) -> String? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let text = value.stringValue, allowed.contains(text) else {
            throw invalid(key, "\(value.serialized()) is not one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        return text
    }

    /// An array of layer indices, each in `0..<layers`.
    public func optionalLayerList(_ key: String, layers: Int) throws(CatalogError) -> Set<Int>? {
        guard let value = config[key], !value.isNull else { return nil }
        guard let items = value.arrayValue else { throw invalid(key, "expected an array of layer indices, found \(value.serialized())") }
        var result = Set<Int>()
        for item in items {
            guard let index = item.intValue, (0..<layers).contains(index) else {
                throw invalid(key, "\(item.serialized()) is not a layer index in 0…\(layers - 1)")
            }
            result.insert(index)
        }
        return result
    }
}
