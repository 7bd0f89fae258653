// A recipe file (JSON or YAML, formats/recipe.md): a named base recipe plus typed rules that set the type of tensors by
// role, projection, layer range or GGUF name, e.g. shared experts Q8_0, routed experts Q4_K, the first three dense
// layers Q6_K; optionally the pipeline's stages. Decoded strictly: unknown keys and values are errors naming the file
// and the key path.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

public enum RecipeFileError: Error, Sendable, CustomStringConvertible {
    case invalid(file: String, key: String, String)
    public var description: String {
        switch self {
        case let .invalid(file, key, what): "\(file): \(key): \(what)"
        }
    }
}

/// One rule: conditions (all must hold) and the type they set.
public struct RecipeRule: Sendable, Equatable {
    /// The role group (`routed_experts`, `attention` …; formats/recipe.md).
    public var group: RoleCategory?
    /// "gate", "up", "down" (FFN) or "q", "k", "v", "output", "q_a", "q_b", "kv_a_mqa", "k_b", "v_b" (attention).
    public var projection: String?
    public var layers: ClosedRange<Int>?
    /// fnmatch glob on the GGUF tensor name.
    public var tensor: String?
    public var type: QuantType

    public init(
        group: RoleCategory? = nil, projection: String? = nil, layers: ClosedRange<Int>? = nil, tensor: String? = nil, type: QuantType
    ) {
        self.group = group
        self.projection = projection
        self.layers = layers
        self.tensor = tensor
        self.type = type
    }

    func matches(_ plan: GGUFTensorPlan) -> Bool {
        if let group, plan.role.category != group { return false }
        if let layers { guard let layer = plan.layer, layers.contains(layer) else { return false } }
        if let tensor, fnmatch(tensor, plan.name, 0) != 0 { return false }
        if let projection, plan.role.kind?.partName != projection { return false }
        return true
    }

    /// True when every `[` opens a closed bracket expression and no `\\` ends the pattern (fnmatch would otherwise treat
    /// the pattern as matching nothing, silently).
    static func isValidGlob(_ glob: String) -> Bool {
        var characters = Array(glob)[...]
        while let c = characters.popFirst() {
            switch c {
            case "\\": if characters.popFirst() == nil { return false }
            case "[":
                if characters.first == "!" || characters.first == "^" { characters.removeFirst() }
                if characters.first == "]" { characters.removeFirst() }
                guard let close = characters.firstIndex(of: "]") else { return false }
                characters = characters[(close + 1)...]
            default: continue
            }
        }
        return true
    }

    /// The recipe file's `projection:` names: FFN projections, attention and MTP parts (a misspelt one would match nothing).
    static let projectionNames: Set<String> = Set(
        Projection.allCases.map(\.rawValue) + AttentionPart.allCases.map(\.rawValue) + MTPPart.allCases.map(\.rawValue))

    /// The recipe file's `role:` names, and the group each stands for.
    static let groupNames: [String: RoleCategory] = Dictionary(
        uniqueKeysWithValues: RoleCategory.allCases.compactMap { category in
            category == .unknown ? nil : (category.recipeName, category)
        })
}

public struct RecipeFile: Sendable {
    public let path: String
    public let base: RecipeName
    public let rules: [RecipeRule]
    /// Pipeline settings (used by `moeq pipeline`); nil when the file only describes types.
    public let source: String?, output: String?, imatrix: String?, threads: Int?
    public let validate: ValidateSettings?
    /// The stages `moeq pipeline` runs, by registered name (default: the conversion's, plus validate when asked).
    public let stages: [String]?
    /// How repack-experts lays out routed experts: stacked (default), split or expert-major.
    public let layout: String?

    public struct ValidateSettings: Sendable {
        public let text: String
        public let context: Int
        public let chunks: Int?
    }

    /// The document as written.
    struct Document: Decodable {
        let format: String
        let base: String
        let description: String?
        let rules: [Rule]?
        let source: String?, output: String?, imatrix: String?
        let threads: Int?
        let validate: Validate?
        let stages: [String]?
        let layout: String?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case format, base, description, rules, source, output, imatrix, threads, validate, stages, layout
        }

        struct Rule: Decodable {
            let role: String?, projection: String?, tensor: String?, type: String
            let layers: [Int]?
            enum CodingKeys: String, CodingKey, CaseIterable { case role, projection, layers, tensor, type }
        }

        struct Validate: Decodable {
            let text: String
            let ctx: Int?, chunks: Int?
            enum CodingKeys: String, CodingKey, CaseIterable { case text, ctx, chunks }
        }
    }

    public init(path: String) throws {
        let root: JSONValue
        if path.hasSuffix(".yaml") || path.hasSuffix(".yml") {
            // The same typed schema, written as YAML (llm-compressor users write their recipes that way).
            let text: String
            do { text = try PositionalFile.readText(path, limit: 1 << 20) } catch {
                throw RecipeFileError.invalid(file: path, key: "(file)", error.reasonWithoutFile)
            }
            do { root = try YAMLDocument.parse(text) } catch {
                throw RecipeFileError.invalid(file: path, key: "(file)", "not YAML this reader accepts: \(error)")
            }
        } else {
            do { root = try JSONParser.parse(file: path) } catch {
                throw RecipeFileError.invalid(file: path, key: "(file)", error.reasonWithoutFile)
            }
        }
        try self.init(json: root, path: path)
    }

    public init(json root: JSONValue, path: String) throws {
        self.path = path
        func fail(_ key: String, _ what: String) -> RecipeFileError { .invalid(file: path, key: key, what) }
        let document: Document
        do { document = try StrictJSON.decode(Document.self, from: root, file: path) } catch { throw fail(error.path, error.reason) }
        guard document.format == "moeq recipe 1" else { throw fail("format", "must be \"moeq recipe 1\"") }
        guard let base = RecipeName(rawValue: document.base) else {
            throw fail("base", "must name a recipe: \(RecipeName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.base = base
        var rules: [RecipeRule] = []
        for (i, rule) in (document.rules ?? []).enumerated() {
            let key = "rules[\(i)]"
            guard let type = QuantType(rawValue: rule.type) else {
                throw fail("\(key).type", "must be one of \(QuantType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var parsed = RecipeRule(type: type)
            if let role = rule.role {
                guard let group = RecipeRule.groupNames[role] else {
                    throw fail("\(key).role", "must be one of \(RecipeRule.groupNames.keys.sorted().joined(separator: ", "))")
                }
                parsed.group = group
            }
            if let projection = rule.projection {
                guard RecipeRule.projectionNames.contains(projection) else {
                    throw fail("\(key).projection", "must be one of \(RecipeRule.projectionNames.sorted().joined(separator: ", "))")
                }
                parsed.projection = projection
            }
            if let layers = rule.layers {
                guard layers.count == 2, layers[0] >= 0, layers[0] <= layers[1] else {
                    throw fail("\(key).layers", "must be [first, last] (inclusive, 0-based integers)")
                }
                parsed.layers = layers[0]...layers[1]
            }
            if let glob = rule.tensor {
                guard RecipeRule.isValidGlob(glob) else {
                    throw fail("\(key).tensor", "\"\(glob)\" is not a valid glob (an unclosed [ or a trailing \\)")
                }
            }
            parsed.tensor = rule.tensor
            rules.append(parsed)
        }
        self.rules = rules
        source = document.source
        output = document.output
        imatrix = document.imatrix
        if let threads = document.threads, !(1...4096).contains(threads) { throw fail("threads", "must be in 1…4096") }
        threads = document.threads
        stages = document.stages
        if let layout = document.layout, OutputLayout(rawValue: layout) == nil {
            throw fail("layout", "must be one of \(OutputLayout.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        layout = document.layout
        if let v = document.validate {
            let context = v.ctx ?? 512
            guard context >= 2 else { throw fail("validate.ctx", "must be at least 2 tokens") }
            if let chunks = v.chunks, chunks < 1 { throw fail("validate.chunks", "must be at least 1") }
            validate = ValidateSettings(text: v.text, context: context, chunks: v.chunks)
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

    /// Warnings for rules that match no quantizable tensor of `plans` (a misspelt glob, layers past the model, a role
    /// the model does not have): such a rule changes nothing, which is rarely what its author meant.
    public func unmatchedRules(_ plans: [GGUFTensorPlan]) -> [String] {
        rules.enumerated().compactMap { i, rule in
            plans.contains { $0.quantizable && rule.matches($0) }
                ? nil : "\(path): rules[\(i)] matches no quantizable tensor of this model; it changes nothing"
        }
    }
}
