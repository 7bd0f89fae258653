// gpt-oss and GLM-4.5 are planned, not converted, so their GGUF layout is checked against llama.cpp's own
// converter: validation/planner/<arch>.json holds the header convert_hf_to_gguf.py wrote (--outtype f16) for a tiny
// transformers model, made by validation/planner/make_llamacpp_layouts.py.
import Foundation
import Testing
import ConversionPipeline
import OutputPlanning
import HardwarePlanner
import ModelCatalog
import QuantKernels
import TensorFormats

private let planner = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/planner")

@Test(arguments: ["gpt_oss", "glm4_moe"])
func plannedLayoutEqualsLlamaCppConverter(arch: String) throws {
    let data = try Data(contentsOf: planner.appendingPathComponent(arch + ".json"))
    let doc = try JSONParser.parse([UInt8](data))
    let spec = try ModelSpec(config: try #require(doc["config"]))
    // Names, ggml shapes, F16/F32 choice and bytes of every tensor, as the planner lays out the F16 recipe.
    let plans = spec.tensorLayout.ggufTensors(includeOutputHead: true)
    let types = RecipeRules(recipe: .f16, spec: spec).types(for: plans)
    var ours: [String: ([Int], String, Int)] = [:]
    for (plan, type) in zip(plans, types) {
        ours[plan.name] = (plan.dimensions, type.rawValue, try #require(type.rowBytes(width: plan.rowWidth)) * plan.rowCount)
    }
    var theirs: [String: ([Int], String, Int)] = [:]
    for tensor in try #require(doc["tensors"]?.arrayValue) {
        let name = try #require(tensor["name"]?.stringValue)
        theirs[name] = (
            try #require(tensor["ne"]?.arrayValue).compactMap(\.intValue), try #require(tensor["type"]?.stringValue),
            try #require(tensor["nbytes"]?.intValue)
        )
    }
    #expect(
        Set(ours.keys) == Set(theirs.keys),
        """
        only ours: \(Set(ours.keys).subtracting(theirs.keys).sorted()); only llama.cpp's: \
        \(Set(theirs.keys).subtracting(ours.keys).sorted())
        """
    )
    for (name, value) in theirs {
        guard let mine = ours[name] else { continue }
        #expect(mine.0 == value.0 && mine.1 == value.1 && mine.2 == value.2, "\(name): ours \(mine), llama.cpp \(value)")
    }

    // The same file's header read back by `moeq plan FILE.gguf`: the spec from llama.cpp's keys equals config.json's.
    var metadata: [(GGUFKey, GGUFValue)] = []
    for (key, value) in try #require(doc["metadata"]?.objectValue).pairs {
        switch value {
        case .string(let s): metadata.append((GGUFKey(rawValue: key), .string(s)))
        case .bool(let b): metadata.append((GGUFKey(rawValue: key), .bool(b)))
        case .integer(let i): metadata.append((GGUFKey(rawValue: key), .uint32(UInt32(i))))
        case .double(let d): metadata.append((GGUFKey(rawValue: key), .float32(Float(d))))
        default: break
        }
    }
    let tensors = try plans.map { plan in
        GGUFTensorSpec(
            name: plan.name, dimensions: theirs[plan.name]?.0 ?? plan.dimensions,
            type: try #require(QuantType(rawValue: theirs[plan.name]?.1 ?? "F32")))
    }
    let layout = try GGUFLayout(metadata: metadata, tensors: tensors)
    let path = NSTemporaryDirectory() + "moeq-layout-\(UUID().uuidString).gguf"
    defer { try? FileManager.default.removeItem(atPath: path) }
    FileManager.default.createFile(atPath: path, contents: Data(layout.header))
    let handle = try #require(FileHandle(forWritingAtPath: path))
    try handle.truncate(atOffset: UInt64(layout.fileSize))
    try handle.close()
    let fromGGUF = try ModelSpec(gguf: GGUFFile(path: path))
    #expect(fromGGUF.architecture == spec.architecture && fromGGUF.layerCount == spec.layerCount && fromGGUF.hiddenSize == spec.hiddenSize)
    #expect(fromGGUF.keyValueHeadCount == spec.keyValueHeadCount && fromGGUF.headDim == spec.headDim)
    #expect(fromGGUF.routedExpertCount == spec.routedExpertCount && fromGGUF.expertsPerToken == spec.expertsPerToken)
    #expect(fromGGUF.expertIntermediateSize == spec.expertIntermediateSize && fromGGUF.sharedExpertCount == spec.sharedExpertCount)
    #expect(fromGGUF.denseLayers == spec.denseLayers && fromGGUF.nextTokenPredictionLayers == spec.nextTokenPredictionLayers)
    #expect(fromGGUF.slidingWindow == spec.slidingWindow && fromGGUF.slidingWindowLayers == spec.slidingWindowLayers)
    #expect(fromGGUF.attentionBias == spec.attentionBias && fromGGUF.partialRotaryFactor == spec.partialRotaryFactor)
    #expect(KVCache.bytes(fromGGUF, context: 4096) == KVCache.bytes(spec, context: 4096))
    let fromFile = Footprint.of(gguf: try GGUFFile(path: path), spec: fromGGUF)
    let planned = try Footprint.of(spec: spec, recipe: .f16)
    #expect(fromFile.bytesByGroup == planned.bytesByGroup && fromFile.activeBytesPerToken == planned.activeBytesPerToken)
}
