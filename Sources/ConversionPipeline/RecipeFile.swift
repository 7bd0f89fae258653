// A recipe file (JSON, formats/recipe.md): a named base recipe plus typed rules that set the type of tensors by
// role, projection, layer range or GGUF name, e.g. shared experts Q8_0, routed experts Q4_K, the first three
// dense layers Q6_K. Unknown keys and values are errors naming the file and the key.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

public enum RecipeFileError: Error, Sendable, CustomStringConvertible {
    case invalid(file: String, key: String, String)
    public var description: String {
        switch self { case let .invalid(file, key, what): "\(file): \(key): \(what)" }
    }
}

/// What a tensor is, for recipe rules (derived from its GGUF name).
public enum TensorGroup: String, Sendable, CaseIterable {
    case embedding, output, attention, router, norm
    case denseFFN = "dense_ffn", sharedExperts = "shared_experts", routedExperts = "routed_experts", other

    public init(gguf name: String) {
        let parts = name.split(separator: ".")
        let leaf = parts.count >= 2 ? String(parts[parts.count - 2]) : name
        switch true {
        case name.hasPrefix("token_embd"): self = .embedding
        case name.hasPrefix("output_norm"): self = .norm
        case name.hasPrefix("output"): self = .output
        case leaf.hasSuffix("_norm") || leaf.hasSuffix("norm"): self = .norm
        case leaf.hasPrefix("ffn_gate_inp") || leaf.hasPrefix("exp_probs"): self = .router
        case leaf.hasPrefix("attn_"): self = .attention
        case leaf.hasSuffix("_exps"): self = .routedExperts
        case leaf.hasSuffix("_shexp"): self = .sharedExperts
        case leaf.hasPrefix("ffn_"): self = .denseFFN
        default: self = .other
        }
    }
}

public struct RecipeRule: Sendable, Equatable {
    public var group: TensorGroup?
    /// "gate", "up", "down" (FFN) or "q", "k", "v", "output", "q_a", "q_b", "kv_a", "k_b", "v_b" (attention): the
    /// part of the GGUF name after `ffn_` / `attn_`, without the `_exps` / `_shexp` suffix.
    public var projection: String?
    public var layers: ClosedRange<Int>?
    /// fnmatch glob on the GGUF tensor name.
    public var tensor: String?
    public var type: QuantType

    func matches(_ plan: GGUFTensorPlan) -> Bool {
        if let group, TensorGroup(gguf: plan.name) != group { return false }
        if let layers { guard let layer = plan.layer, layers.contains(layer) else { return false } }
        if let tensor, fnmatch(tensor, plan.name, 0) != 0 { return false }
        if let projection, RecipeRule.projection(of: plan.name) != projection { return false }
        return true
    }

    static func projection(of name: String) -> String? {
        let parts = name.split(separator: ".")
        guard parts.count >= 2 else { return nil }
        var leaf = String(parts[parts.count - 2])
        for prefix in ["ffn_", "attn_"] where leaf.hasPrefix(prefix) { leaf.removeFirst(prefix.count) }
        for suffix in ["_exps", "_shexp"] where leaf.hasSuffix(suffix) { leaf.removeLast(suffix.count) }
        return leaf
    }
}

public struct RecipeFile: Sendable {
    public let path: String
    public let base: RecipeName
    public let rules: [RecipeRule]
    /// Pipeline settings (used by `moeq pipeline`); nil when the file only describes types.
    public let source: String?, output: String?, imatrix: String?, threads: Int?
    public let validate: ValidateSettings?

    public struct ValidateSettings: Sendable {
        public let text: String
        public let context: Int
        public let chunks: Int?
    }

    static let topKeys: Set<String> = ["format", "base", "rules", "source", "output", "imatrix", "threads", "validate", "description"]
    static let ruleKeys: Set<String> = ["role", "projection", "layers", "tensor", "type"]

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw RecipeFileError.invalid(file: path, key: "(file)", "cannot be read") }
        let root: JSONValue
        if path.hasSuffix(".yaml") || path.hasSuffix(".yml") {
            // The same typed schema, written as YAML (llm-compressor users write their recipes that way).
            guard let text = String(data: data, encoding: .utf8) else { throw RecipeFileError.invalid(file: path, key: "(file)", "not UTF-8") }
            do { root = try YAMLParser.parse(text) } catch { throw RecipeFileError.invalid(file: path, key: "(file)", "not YAML this reader accepts: \(error)") }
        } else {
            do { root = try JSONParser.parse([UInt8](data)) } catch { throw RecipeFileError.invalid(file: path, key: "(file)", "not JSON: \(error)") }
        }
        try self.init(json: root, path: path)
    }

    public init(json root: JSONValue, path: String) throws {
        self.path = path
        func fail(_ key: String, _ what: String) -> RecipeFileError { .invalid(file: path, key: key, what) }
        guard let top = root.objectValue else { throw fail("(top level)", "must be an object") }
        for (key, _) in top.pairs where !RecipeFile.topKeys.contains(key) {
            throw fail(key, "unknown key (allowed: \(RecipeFile.topKeys.sorted().joined(separator: ", ")))")
        }
        guard top["format"]?.stringValue == "moeq recipe 1" else { throw fail("format", "must be \"moeq recipe 1\"") }
        guard let baseName = top["base"]?.stringValue, let base = RecipeName(rawValue: baseName) else {
            throw fail("base", "must name a recipe: \(RecipeName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.base = base
        var rules: [RecipeRule] = []
        for (i, item) in (top["rules"]?.arrayValue ?? []).enumerated() {
            let key = "rules[\(i)]"
            guard let object = item.objectValue else { throw fail(key, "must be an object") }
            for (k, _) in object.pairs where !RecipeFile.ruleKeys.contains(k) {
                throw fail("\(key).\(k)", "unknown key (allowed: \(RecipeFile.ruleKeys.sorted().joined(separator: ", ")))")
            }
            guard let typeName = object["type"]?.stringValue, let type = QuantType(rawValue: typeName) else {
                throw fail("\(key).type", "must be one of \(QuantType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var rule = RecipeRule(type: type)
            if let role = object["role"] {
                guard let name = role.stringValue, let group = TensorGroup(rawValue: name) else {
                    throw fail("\(key).role", "must be one of \(TensorGroup.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                rule.group = group
            }
            if let projection = object["projection"] {
                guard let text = projection.stringValue, !text.isEmpty else { throw fail("\(key).projection", "must be a string such as \"down\"") }
                rule.projection = text
            }
            if let layers = object["layers"] {
                guard let pair = layers.arrayValue?.compactMap(\.intValue), pair.count == 2, pair[0] >= 0, pair[0] <= pair[1] else {
                    throw fail("\(key).layers", "must be [first, last] (inclusive, 0-based)")
                }
                rule.layers = pair[0]...pair[1]
            }
            if let tensor = object["tensor"] {
                guard let glob = tensor.stringValue else { throw fail("\(key).tensor", "must be a glob string") }
                rule.tensor = glob
            }
            rules.append(rule)
        }
        self.rules = rules
        source = top["source"]?.stringValue
        output = top["output"]?.stringValue
        imatrix = top["imatrix"]?.stringValue
        threads = top["threads"]?.intValue
        if let v = top["validate"] {
            guard let object = v.objectValue, let text = object["text"]?.stringValue else { throw fail("validate", "must be {\"text\": FILE, \"ctx\": N, \"chunks\": N}") }
            for (k, _) in object.pairs where !["text", "ctx", "chunks"].contains(k) { throw fail("validate.\(k)", "unknown key (allowed: chunks, ctx, text)") }
            validate = ValidateSettings(text: text, context: object["ctx"]?.intValue ?? 512, chunks: object["chunks"]?.intValue)
        } else {
            validate = nil
        }
    }

    /// The base recipe's types with the rules applied in order (the last matching rule wins) to quantizable tensors;
    /// a type a row width cannot hold falls back as llama-quantize does.
    public func types(_ plans: [GGUFTensorPlan], base types: [QuantType]) -> [QuantType] {
        zip(plans, types).map { plan, type in
            guard plan.quantizable, let rule = rules.last(where: { $0.matches(plan) }) else { return type }
            return RecipeRules.fallback(rule.type, width: plan.rowWidth)
        }
    }
}
