// Everything decided before a byte of tensor data is read: the spec, the checkpoint's headers checked against it,
// every GGUF tensor with its type, the GGUF layout (every offset), metadata and warnings. `moeq convert --dry-run`,
// the planner and the conversion runner all start from this.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// Why a conversion cannot be planned.
public enum PlanningError: Error, Sendable, CustomStringConvertible {
    case missingSource(tensor: String, source: String, directory: String)
    case shape(tensor: String, reason: String)
    case unsupportedArchitecture(file: String, modelType: String)
    /// A very-low-bit target without importance data for it (llama-quantize's refusal: "the result will be garbage").
    case importanceRequired(tensor: String, type: QuantType, recipe: String, imatrix: String?)

    public var description: String {
        switch self {
        case let .importanceRequired(tensor, type, recipe, imatrix):
            if let imatrix {
                "\(imatrix): no importance data for tensor \(tensor), which \(recipe) quantizes to \(type.rawValue); a very-low-bit type "
                    + "needs it (llama-quantize refuses too). Make the imatrix from this model with `moeq imatrix`"
            } else {
                "\(recipe) quantizes tensor \(tensor) to \(type.rawValue), which needs an importance matrix (as in llama-quantize): "
                    + "make one with `moeq imatrix MODEL --text FILE -o imatrix.gguf` and pass --imatrix"
            }
        case let .unsupportedArchitecture(file, type):
            "\(file): converting \(type) checkpoints is not supported yet (`moeq plan` and `moeq inspect` read them); convertible: "
                + Architecture.modelTypes.filter(\.value.isConvertible).keys.sorted().joined(separator: ", ")
        case let .missingSource(tensor, source, directory):
            """
            \(directory): GGUF tensor \(tensor) needs \"\(source)\", which the checkpoint lacks (an incomplete download, or a \
            config.json that does not match the weights)
            """
        case let .shape(tensor, reason): "GGUF tensor \(tensor): \(reason)"
        }
    }
}

public struct ConversionPlan: Sendable {
    public let spec: ModelSpec
    /// The spec's tensor tables (classifier, names both ways).
    public let tensorLayout: TensorLayout
    public let checkpoint: Checkpoint
    public let recipe: RecipeName
    public let tensors: [GGUFTensorPlan]
    public let types: [QuantType]
    /// Every byte offset of the GGUF.
    public let layout: GGUFLayout
    /// The GGUF key-value pairs of `layout` (other output layouts re-use them).
    public let metadata: [(GGUFKey, GGUFValue)]
    public let warnings: [String]
    /// llama.cpp importance matrix (`--imatrix`), applied per tensor and per expert.
    public let importance: ImportanceMatrix?
    public let resolver: WeightResolver
    /// Checkpoint tensors the spec does not describe, left out (only with `skipUnknown`).
    public let skippedTensors: [String]

    /// Source bytes this conversion reads (all stored tensors its weights use).
    public var sourceBytes: Int { checkpoint.tensors.reduce(0) { $0 + $1.info.byteCount } }

    /// A checkpoint read and checked against its config.json: everything a plan needs that does not depend on the
    /// recipe (the planner prices several recipes from one).
    public struct CheckedCheckpoint: Sendable {
        let checkpoint: Checkpoint
        let config: JSONValue
        let spec: ModelSpec
        let layout: TensorLayout
        let resolver: WeightResolver
        let skippedTensors: [String]
        let plans: [GGUFTensorPlan]

        /// The checkpoint's safetensors files, headers included: what was downloaded.
        public var fileBytes: Int { checkpoint.totalFileBytes }

        public init(path: String, skipUnknown: Bool = false) throws {
            let checkpoint = try Checkpoint(path: path)
            let configPath = (checkpoint.directory as NSString).appendingPathComponent("config.json")
            let config: JSONValue
            do { config = try JSONParser.parse(file: configPath) } catch {
                throw CatalogError.unreadable(file: configPath, reason: error.reasonWithoutFile + " (config.json is needed to convert)")
            }
            let spec = try ModelSpec(config: config, file: configPath)
            guard spec.architecture.isConvertible else {
                throw PlanningError.unsupportedArchitecture(file: configPath, modelType: spec.modelType)
            }
            let layout = spec.tensorLayout
            try layout.checkTensorCount(stored: checkpoint.tensors.count, config: configPath)
            let resolver = WeightResolver(checkpoint: checkpoint, quantization: spec.quantization)
            let skippedTensors = try layout.check(
                try resolver.allWeights(), directory: checkpoint.directory, config: configPath, allowUnknown: skipUnknown)
            // A tied model may still ship lm_head (then llama.cpp writes output.weight); an untied one must.
            let outputHead = layout.checkpointName(.outputHead).map { checkpoint.contains($0) } ?? false
            let plans = layout.ggufTensors(includeOutputHead: !spec.tieWordEmbeddings || outputHead)
            // Every source must exist (as itself or packed); shapes were checked above.
            for plan in plans {
                for source in plan.source.names where !resolver.hasWeight(named: source) {
                    throw PlanningError.missingSource(tensor: plan.name, source: source, directory: checkpoint.directory)
                }
            }
            (self.checkpoint, self.config, self.spec, self.layout, self.resolver) = (checkpoint, config, spec, layout, resolver)
            (self.skippedTensors, self.plans) = (skippedTensors, plans)
        }
    }

    /// Plans a conversion of the checkpoint at `path` (a directory with config.json). `rules`: a recipe file whose rules
    /// adjust the named recipe's types. `skipUnknown`: leave out tensors config.json does not describe instead of refusing.
    /// `readsScales` false: a dry run's plan, which does not read INT4-NATIVE's scales (see `Int4Native.types`).
    public init(
        path: String, recipe: RecipeName, name: String? = nil, importance: ImportanceMatrix? = nil, rules: RecipeFile? = nil,
        skipUnknown: Bool = false, readsScales: Bool = true
    ) throws {
        try self.init(
            checked: try CheckedCheckpoint(path: path, skipUnknown: skipUnknown), recipe: recipe, name: name, importance: importance,
            rules: rules, readsScales: readsScales)
    }

    /// Plans `recipe` for a checkpoint already read and checked.
    public init(
        checked: CheckedCheckpoint, recipe: RecipeName, name: String? = nil, importance: ImportanceMatrix? = nil,
        rules: RecipeFile? = nil, readsScales: Bool = true
    ) throws {
        let (checkpoint, config, spec, layout) = (checked.checkpoint, checked.config, checked.spec, checked.layout)
        let (resolver, skippedTensors, plans) = (checked.resolver, checked.skippedTensors, checked.plans)
        var types = RecipeRules(recipe: recipe, spec: spec, hasImportance: importance != nil).types(for: plans)
        if let rules { types = rules.types(plans, base: types) }
        let recipeRules = RecipeRules(recipe: recipe, spec: spec, hasImportance: importance != nil)
        // Checked in llama-quantize's tensor order (layer, then name), so both tools name the same first tensor.
        let llamaOrder = zip(plans, types).sorted { a, b in
            (a.0.layer ?? -1, a.0.name) < (b.0.layer ?? -1, b.0.name)
        }
        for (plan, type) in llamaOrder where recipeRules.requiresImportance(plan, type: type) {
            guard let importance, importance.entries.valueCount(plan.name) != nil else {
                throw PlanningError.importanceRequired(tensor: plan.name, type: type, recipe: recipe.rawValue, imatrix: importance?.path)
            }
        }
        var warnings: [String] = rules?.unmatchedRules(plans) ?? []
        if recipe == .int4Native {
            types = try Int4Native.types(plans: plans, types: types, resolver: resolver, readScales: readsScales, warnings: &warnings)
        }
        var metadata: [(GGUFKey, GGUFValue)] = [
            (.architecture, .string(spec.ggufArchitecture)),
            (.type, .string("model")),
            (.name, .string(name ?? ((checkpoint.directory as NSString).lastPathComponent))),
            (.fileType, .uint32(recipe.fileType)),
            (.quantizationVersion, .uint32(2)),
        ]
        metadata += spec.ggufHyperParameters()
        metadata += try TokenizerMetadata.keys(directory: checkpoint.directory, spec: spec, config: config, warnings: &warnings)
        if let importance {
            metadata += [
                (.quantizeImatrixFile, .string(importance.path)),
                (.quantizeImatrixDataset, .string(importance.datasets.first ?? "")),
                (.quantizeImatrixEntries, .uint32(UInt32(clamping: importance.entries.count))),
                (.quantizeImatrixChunks, .uint32(UInt32(clamping: importance.chunkCount))),
            ]
            for plan in plans where plan.quantizable {
                guard let valueCount = importance.entries.valueCount(plan.name) else { continue }
                let matrices = plan.dimensions.count == 3 ? plan.dimensions[2] : 1
                guard valueCount == plan.rowWidth * matrices else {
                    throw ImportanceMatrixError.unreadable(
                        file: importance.path, byteOffset: 0,
                        reason:
                            """
                            entry \(plan.name) has \(valueCount) values; the tensor needs \(plan.rowWidth) × \(matrices) (an \
                            imatrix of another model?)
                            """
                    )
                }
            }
            let missing = plans.filter { $0.quantizable && importance.entries.valueCount($0.name) == nil }.map(\.name)
            if !missing.isEmpty {
                warnings.append(
                    "imatrix has no entry for \(missing.joined(separator: ", ")); quantized without one (as llama-quantize does)")
            }
        }
        if !skippedTensors.isEmpty {
            warnings.append(
                """
                left out \(skippedTensors.count) tensor(s) config.json does not describe: \
                \(skippedTensors.prefix(5).joined(separator: ", "))
                """
            )
        }
        let specs = zip(plans, types).map { GGUFTensorSpec(name: $0.name, dimensions: recipe.dimensions(of: $0), type: $1) }
        self.spec = spec
        tensorLayout = layout
        self.checkpoint = checkpoint
        self.recipe = recipe
        tensors = plans
        self.types = types
        self.layout = try GGUFLayout(metadata: metadata, tensors: specs)
        self.metadata = metadata
        self.warnings = warnings
        self.importance = importance
        self.resolver = resolver
        self.skippedTensors = skippedTensors
    }

    /// Identity of the output layout (header bytes and recipe): shard parts and resume journals must match it.
    public static func layoutHash(_ layout: GGUFLayout, recipe: RecipeName) -> UInt64 {
        ContentHash.xxh3(layout.header + Array(recipe.rawValue.utf8))
    }

    /// The manifest's header hash: the bytes before the first tensor's data.
    public static func headerHash(_ layout: GGUFLayout) -> UInt64 {
        let end = min(layout.tensors.first.map { layout.dataStart + $0.offset } ?? layout.header.count, layout.header.count)
        return layout.header.withUnsafeBytes { ContentHash.xxh3(UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
    }
}
