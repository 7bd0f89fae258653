// The bytes a recipe produces, by what a token touches: always-on tensors (attention, norms, router, shared experts,
// dense FFN, embeddings, output) and routed experts, plus what one token reads of them (top-k of the routed
// experts). Computed by the conversion's own plan — the same recipe rules, QuantType table and GGUF layout — so
// the planner's size for a recipe is `moeq convert --dry-run`'s to the byte.
import Foundation
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats

public struct Footprint: Sendable {
    /// The recipe planned, or nil for an existing GGUF file (its own types).
    public let recipe: RecipeName?
    /// The recipe's name, or the GGUF file's `general.file_type` name.
    public let label: String
    /// Whole GGUF file (header included) when planned from a checkpoint; tensor data only from a bare config.
    public let fileBytes: Int
    public let headerIncluded: Bool
    public let bytesByGroup: [RoleCategory: Int]
    /// Bytes one decoded token reads: every always-on tensor except the embedding table (one row of it), plus
    /// top-k / experts of each routed-expert tensor.
    public let activeBytesPerToken: Int
    /// The routed-expert part of `activeBytesPerToken`.
    public let activeRoutedBytesPerToken: Int
    /// Layers holding routed experts (GLM-4.5's MTP layer included: it is in the file, though decode skips it).
    public let routedExpertLayers: Int
    /// Weights one token multiplies with (2 FLOPs each): every always-on tensor but the embedding table (a lookup),
    /// plus top-k / experts of the routed experts. MTP layers excluded.
    public let activeParametersPerToken: Int
    public let kvBytesPerToken: Int

    public var routedExpertBytes: Int { bytesByGroup[.routedExperts] ?? 0 }
    public var alwaysOnBytes: Int { bytesByGroup.filter { $0.key != .routedExperts }.reduce(0) { $0 + $1.value } }

    /// From a checkpoint directory (headers, config.json and tokenizer only): exactly the GGUF `convert` writes.
    public static func of(checkpoint path: String, recipe: RecipeName, rules: RecipeFile? = nil) throws -> Footprint {
        try of(plan: ConversionPlan(path: path, recipe: recipe, rules: rules, readsScales: false))
    }

    /// Several recipes of one checkpoint, whose headers are read and checked once.
    public static func of(checkpoint path: String, recipes: [RecipeName]) throws -> [Footprint] {
        try withSource(checkpoint: path, recipes: recipes).footprints
    }

    /// Several recipes of one checkpoint and the bytes of its safetensors files (the source they are made from).
    public static func withSource(checkpoint path: String, recipes: [RecipeName]) throws -> (footprints: [Footprint], sourceBytes: Int) {
        let checked = try ConversionPlan.CheckedCheckpoint(path: path)
        return (try recipes.map { try of(plan: ConversionPlan(checked: checked, recipe: $0, readsScales: false)) }, checked.fileBytes)
    }

    /// The footprint of a planned conversion (its own per-tensor types, as `moeq fit` or a recipe file chose them).
    public static func of(conversion plan: ConversionPlan) throws -> Footprint { try of(plan: plan) }

    private static func of(plan: ConversionPlan) throws -> Footprint {
        let recipe = plan.recipe
        return Footprint(
            recipe: recipe, spec: plan.spec, tensors: plan.tensors, types: plan.types,
            tensorBytes: plan.layout.tensors.map(\.byteCount), fileBytes: plan.layout.fileSize, headerIncluded: true)
    }

    /// From config.json alone (a bundled spec or a bare config): the same tensor plan and types; tensor data only,
    /// since the GGUF header depends on the tokenizer.
    public static func of(spec: ModelSpec, recipe: RecipeName, tiedEmbeddings: Bool? = nil) throws -> Footprint {
        try of(spec: spec, recipes: [recipe], tiedEmbeddings: tiedEmbeddings)[0]
    }

    /// Several recipes of one model: the tensor plan is made once.
    public static func of(spec: ModelSpec, recipes: [RecipeName], tiedEmbeddings: Bool? = nil) throws -> [Footprint] {
        let tied = tiedEmbeddings ?? spec.tieWordEmbeddings
        let tensors = spec.tensorLayout.ggufTensors(includeOutputHead: !tied)
        return try recipes.map { try of(spec: spec, recipe: $0, tensors: tensors) }
    }

    static func of(spec: ModelSpec, recipe: RecipeName, tensors: [GGUFTensorPlan]) throws -> Footprint {
        var types = RecipeRules(recipe: recipe, spec: spec).types(for: tensors)
        if recipe == .int4Native { types = int4NativeTypes(spec: spec, tensors: tensors, types: types) }
        var bytes: [Int] = []
        for (tensor, type) in zip(tensors, types) {
            guard let row = type.rowBytes(width: tensor.rowWidth) else {
                throw PlanningError.shape(tensor: tensor.name, reason: "width \(tensor.rowWidth) does not fit \(type.rawValue)")
            }
            bytes.append(row * tensor.rowCount)
        }
        // The GGUF data section: each tensor padded to the default alignment, as the writer lays it out.
        let alignment = GGUFLayout.defaultAlignment
        let data = bytes.reduce(0) { $0 + ($1 + alignment - 1) / alignment * alignment }
        return Footprint(
            recipe: recipe, spec: spec, tensors: tensors, types: types, tensorBytes: bytes,
            fileBytes: data, headerIncluded: false)
    }

    /// INT4-NATIVE from a spec alone: stacked routed experts whose every expert the spec's compressed-tensors config
    /// stores as symmetric INT4 group 32 are carried as Q4_0 (as `convert` does when every scale is F16-exact, which only
    /// the data can tell; a checkpoint directory is planned from its headers and scales instead).
    static func int4NativeTypes(spec: ModelSpec, tensors: [GGUFTensorPlan], types: [QuantType]) -> [QuantType] {
        guard case .compressedTensors(let config) = spec.quantization else { return types }
        return zip(tensors, types).map { tensor, type in
            guard case .stacked(let names) = tensor.source, !names.isEmpty else { return type }
            // The config names modules by pattern, the same for every expert of a tensor: the first and last stand for all.
            let packed = [names[0], names[names.count - 1]].allSatisfy { name in
                let module = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
                guard !config.isIgnored(module), let group = config.group(for: module) else { return false }
                return group.bits == 4 && group.symmetric && group.groupSize == 32
            }
            return packed ? .q4_0 : type
        }
    }

    /// From GGUF headers: the tensors as stored (sizes and types of those files). `files` is one GGUF, or every file
    /// of a split GGUF (see `ggufFiles(first:)`).
    public static func of(gguf files: [GGUFFile], spec: ModelSpec) -> Footprint {
        let infos = files.flatMap(\.tensors)
        let layout = spec.tensorLayout
        let tensors = infos.map { info in
            let (role, part) = layout.classifyFileTensor(info.name) ?? (.unknown, .weight)
            return GGUFTensorPlan(name: info.name, dimensions: info.dimensions, source: .weight(info.name), role: role, part: part)
        }
        let fileType = files.first?[GGUFKey.fileType]?.integerValue.flatMap { type in
            RecipeName.allCases.first { Int($0.fileType) == type }?.rawValue
        }
        return Footprint(
            recipe: nil, label: fileType ?? "file", spec: spec, tensors: tensors, types: infos.map(\.type),
            tensorBytes: infos.map(\.byteCount), fileBytes: files.reduce(0) { $0 + $1.mapping.size }, headerIncluded: true)
    }

    public static func of(gguf file: GGUFFile, spec: ModelSpec) -> Footprint { of(gguf: [file], spec: spec) }

    /// Refuses a GGUF set of an MoE model that holds no routed experts (the dense file of `--layout expert-major`):
    /// planned alone it would show a model without its experts.
    public static func checkHoldsExperts(_ files: [GGUFFile], path: String, spec: ModelSpec) throws {
        guard spec.routedExpertCount > 0 else { return }
        let layout = spec.tensorLayout
        let hasExperts = files.contains { file in
            file.tensors.contains { layout.classifyFileTensor($0.name)?.role.category == .routedExperts }
        }
        guard !hasExperts else { return }
        let pack = ExpertPackFile.path(forDense: path)
        throw CatalogError.inconsistent(
            file: path,
            reason: PositionalFile.exists(pack)
                ? "holds no routed experts: they are in \(pack) (an expert-major conversion), which plan does not size; "
                    + "plan the checkpoint or a stacked conversion instead"
                : "holds no routed experts although the model has \(spec.routedExpertCount) per MoE layer; plan the checkpoint instead")
    }

    /// A GGUF and, when it is the first file of a split set (`split.count` > 1, name `…-00001-of-0000N.gguf`),
    /// its siblings. Another file of a set is refused: the set is planned from its first file.
    public static func ggufFiles(first path: String) throws -> [GGUFFile] {
        let file = try GGUFFile(path: path)
        guard let count = file[GGUFKey.splitCount]?.integerValue, count > 1 else { return [file] }
        guard count <= 10_000 else {
            throw CatalogError.invalidField(file: path, field: GGUFKey.splitCount.rawValue, reason: "\(count) files is implausible")
        }
        guard let stem = GGUFSplitName.stem(ofFirst: path, count: count) else {
            throw CatalogError.inconsistent(
                file: path,
                reason:
                    "one file of a \(count)-file split GGUF: give the set's first file (…\(GGUFSplitName.path("", number: 1, of: count)))")
        }
        return try [file] + (2...count).map { try GGUFFile(path: GGUFSplitName.path(stem, number: $0, of: count)) }
    }

    init(
        recipe: RecipeName?, label: String? = nil, spec: ModelSpec, tensors: [GGUFTensorPlan], types: [QuantType], tensorBytes: [Int],
        fileBytes: Int, headerIncluded: Bool
    ) {
        self.recipe = recipe
        self.label = label ?? recipe?.rawValue ?? "file"
        self.fileBytes = fileBytes
        self.headerIncluded = headerIncluded
        var groups: [RoleCategory: Int] = [:]
        var active = 0, activeRouted = 0, activeParameters = 0.0
        var expertLayers = Set<Int>()
        let share = spec.routedExpertCount > 0 ? Double(spec.expertsPerToken) / Double(spec.routedExpertCount) : 0
        for (tensor, bytes) in zip(tensors, tensorBytes) {
            let group = tensor.role.category
            groups[group, default: 0] += bytes
            if group == .routedExperts, let layer = tensor.layer { expertLayers.insert(layer) }
            // MTP layers (GLM-4.5 keeps one in the GGUF) are loaded but not run by a plain decode.
            if let layer = tensor.layer, layer >= spec.layerCount { continue }
            let elements = Double(tensor.dimensions.reduce(1, *))
            switch group {
            case .routedExperts:
                let read = Int((Double(bytes) * share).rounded())
                active += read
                activeRouted += read
                activeParameters += elements * share
            case .embedding: active += bytes / max(tensor.rowCount, 1)
            default:
                active += bytes
                activeParameters += elements
            }
        }
        bytesByGroup = groups
        activeBytesPerToken = active
        activeRoutedBytesPerToken = activeRouted
        routedExpertLayers = expertLayers.count
        // Tied embeddings: the output projection multiplies with the embedding table.
        if !tensors.contains(where: { $0.role == .outputHead }), let embedding = tensors.first(where: { $0.role == .embedding }) {
            activeParameters += Double(embedding.dimensions.reduce(1, *))
        }
        activeParametersPerToken = Int(activeParameters.rounded())
        kvBytesPerToken = KVCache.bytesPerToken(spec)
    }
}
