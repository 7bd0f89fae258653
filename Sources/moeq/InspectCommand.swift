// `moeq inspect PATH [--json] [--tensors GLOB]`: what a checkpoint holds, from headers only.
import ArgumentParser
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a checkpoint from its headers and config.json (tensor data is never read).")

    @Argument(help: "A checkpoint directory, a .safetensors file, or a model.safetensors.index.json.")
    var path: String

    @Flag(help: "Print one JSON document instead of tables.")
    var json = false

    @Option(help: "List the tensors whose names match this shell glob (e.g. '*.layers.3.*').")
    var tensors: String?

    func run() throws {
        try reportingErrors {
            if path.hasSuffix(".gguf") { return try inspectGGUF() }
            let inspection = try CheckpointInspection(path: path)
            if json {
                print(withResources(inspection.json(tensorGlob: tensors, includeTensors: tensors != nil)).prettyPrinted(), terminator: "")
                return
            }
            printSummary(inspection)
            if let tensors { printTensorTable(inspection.tensorRows(matching: tensors)) }
        }
    }

    private func printSummary(_ inspection: CheckpointInspection) {
        let checkpoint = inspection.checkpoint
        print("checkpoint     \(path)")
        print(
            """
            files          \(checkpoint.files.count) safetensors, \(grouped(checkpoint.tensors.count)) tensors, \
            \(humanBytes(checkpoint.totalFileBytes))
            """
        )
        guard let spec = inspection.spec, let report = inspection.report else {
            print("config         no config.json beside the weights: tensor table only")
            return
        }
        let mtp = spec.nextTokenPredictionLayers > 0 ? " + \(spec.nextTokenPredictionLayers) MTP" : ""
        print("architecture   \(spec.architecture.rawValue) (model_type \(spec.modelType)\(spec.nestedTextConfig ? ", text_config" : ""))")
        print("layers         \(spec.layerCount): \(spec.layerCount - spec.moeLayerCount) dense, \(spec.moeLayerCount) MoE\(mtp)")
        print("hidden / vocab \(spec.hiddenSize) / \(spec.vocabularySize)")
        if let mla = spec.latentAttention {
            print(
                """
                attention      MLA, \(spec.headCount) heads, q_lora \(mla.queryRank.map(String.init) ?? "none"), kv_lora \
                \(mla.keyValueRank), rope dim \(mla.ropeHeadDim)\(spec.latentAttentionWithoutPositions ? " (unrotated)" : "")\
                \(spec.indexer.map { ", DSA indexer \($0.heads) heads × \($0.headDim), top \($0.topK)" } ?? "")
                """
            )
            if let linear = spec.linearAttention {
                print(
                    """
                    linear attn    KDA on \(linear.layers.count) of \(spec.layerCount) layers (the rest MLA): \(linear.heads) heads × \
                    \(linear.headDim), \(linear.convKernel)-tap convolutions
                    """)
            }
        } else {
            print("attention      GQA, \(spec.headCount) heads, \(spec.keyValueHeadCount) kv heads × \(spec.headDim)")
        }
        print(
            """
            experts        \(spec.routedExpertCount) routed + \(spec.sharedExpertCount) shared, \(spec.expertsPerToken) used per \
            token (expert ffn \(spec.expertIntermediateSize), \(spec.routerScoring.rawValue) router)
            """
        )
        print("source quant   \(spec.quantization.summary)")
        print("parameters     \(grouped(report.totalParameters)) total (\(humanCount(report.totalParameters)))")
        print("active/token   \(grouped(report.activeParameters)) (\(humanCount(report.activeParameters)))")
        if report.nextTokenPredictionParameters > 0 {
            print("mtp layers     \(grouped(report.nextTokenPredictionParameters)) parameters (not in the total)")
        }
        if report.bufferElements > 0 { print("buffers        \(grouped(report.bufferElements)) elements (router bias; not in the total)") }
        print("")
        var roles = TextTable([.init("role"), .init("parameters", .right), .init("stored bytes", .right)])
        for category in RoleCategory.allCases where report.bytesByCategory[category] != nil {
            roles.add(
                category.rawValue, grouped(report.parametersByCategory[category] ?? 0), humanBytes(report.bytesByCategory[category] ?? 0))
        }
        roles.print()
        print("")
        var dtypes = TextTable([.init("dtype"), .init("bytes", .right)])
        for dtype in SafetensorsDType.allCases {
            if let bytes = report.bytesByDType[dtype] { dtypes.add(dtype.rawValue, humanBytes(bytes)) }
        }
        dtypes.print()
        if !report.unknownTensors.isEmpty {
            print("")
            print("unknown tensors (\(report.unknownTensors.count)), kept but not classified:")
            for name in report.unknownTensors.prefix(20) { print("  \(name)") }
            if report.unknownTensors.count > 20 { print("  … and \(report.unknownTensors.count - 20) more") }
        }
    }

    private func inspectGGUF() throws {
        let file = try GGUFFile(path: path)
        if json {
            print(withResources(file.summaryJSON(tensorGlob: tensors)).prettyPrinted(), terminator: "")
            return
        }
        print("file           \(path) (GGUF v\(file.version), \(humanBytes(file.mapping.size)), alignment \(file.alignment))")
        print("tensors        \(grouped(file.tensors.count)), \(grouped(file.tensors.reduce(0) { $0 + $1.elementCount })) values")
        var metadata = TextTable(titles: "key", "value")
        for (key, value) in file.metadata {
            let shown: String
            if case .array(let type, let elements) = value {
                shown = "[\(elements.count) × \(type)]"
            } else {
                shown = value.summaryJSON().serialized()
            }
            metadata.add(key, String(shown.prefix(100)))
        }
        metadata.print()
        print("")
        var types = TextTable([.init("type"), .init("bytes", .right)])
        for type in QuantType.allCases {
            if let bytes = file.bytesByType[type] { types.add(type.rawValue, humanBytes(bytes)) }
        }
        types.print()
        if let tensors {
            print("")
            var table = TextTable([.init("tensor"), .init("type"), .init("ne"), .init("offset", .right)])
            for tensor in file.tensors where fnmatch(tensors, tensor.name, 0) == 0 {
                let dims = "{" + tensor.dimensions.map(String.init).joined(separator: ", ") + "}"
                table.add(tensor.name, tensor.type.rawValue, dims, "\(file.dataStart + tensor.offset)")
            }
            table.print()
        }
    }

    private func printTensorTable(_ rows: [CheckpointInspection.TensorRow]) {
        print("")
        var table = TextTable(titles: "name", "dtype", "shape", "role", "file @ offset")
        for row in rows {
            let shape = "[" + row.shape.map(String.init).joined(separator: ", ") + "]"
            table.add(row.name, row.dtype.rawValue, shape, row.role, "\(row.file) @ \(row.byteOffset)")
        }
        table.print()
        print("\(rows.count) tensors")
    }
}
