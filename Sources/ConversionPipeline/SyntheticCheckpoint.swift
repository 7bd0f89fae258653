// `moeq synth`: deterministic HF-layout checkpoints (config.json, sharded safetensors + index, tokenizer.json)
// for every supported architecture, dense with seeded random weights or sparse (all-zero data, real headers).
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// Storage of the linear weights of a synthetic checkpoint.
public enum SyntheticDType: String, Sendable, CaseIterable {
    case bf16, f32
    /// DeepSeek/Kimi FP8 E4M3 with 128×128 F32 `weight_scale_inv` blocks.
    case fp8
    /// Kimi K2 Thinking layout: routed experts compressed-tensors INT4, symmetric, group 32; the rest BF16.
    case int4
}

/// Options of one synthetic checkpoint.
public struct SyntheticOptions: Sendable {
    public var preset: ModelPreset
    public var dtype: SyntheticDType
    public var seed: UInt64 = 0
    /// Write headers and size the files, but leave all tensor data zero (sparse on disk).
    public var sparse = false
    /// Keep only the first N layers (real widths).
    public var layers: Int? = nil
    public var shardBytes: Int? = nil

    public init(preset: ModelPreset, dtype: SyntheticDType) {
        self.preset = preset
        self.dtype = dtype
    }
}

/// What was written.
public struct SyntheticSummary: Sendable {
    public let directory: String
    public let shardFiles: [String]
    public let tensorCount: Int
    public let totalBytes: Int
}

public enum SyntheticCheckpoint {
    /// Groups size for the INT4 layout.
    public static let int4GroupSize = 32

    /// The config.json a checkpoint with these options carries.
    public static func config(for options: SyntheticOptions) -> JSONValue {
        guard var object = options.preset.config.objectValue else { return options.preset.config }
        if let layers = options.layers {
            // Multimodal wrappers (Kimi K2.5) keep the language model's hyper-parameters in text_config.
            func sliced(_ config: JSONObject) -> JSONObject {
                var config = config
                config["num_hidden_layers"] = .integer(Int64(layers))
                if config["num_nextn_predict_layers"] != nil { config["num_nextn_predict_layers"] = 0 }
                return config
            }
            if let text = object["text_config"]?.objectValue {
                object["text_config"] = .object(sliced(text))
            } else {
                object = sliced(object)
            }
        }
        switch options.dtype {
        case .bf16, .f32:
            object["quantization_config"] = nil
            object["torch_dtype"] = .string(options.dtype == .f32 ? "float32" : "bfloat16")
        case .fp8:
            object["torch_dtype"] = "bfloat16"
            object["quantization_config"] = [
                "activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128],
            ]
        case .int4:
            object["torch_dtype"] = "bfloat16"
            object["quantization_config"] = [
                "quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
                "kv_cache_scheme": nil, "global_compression_ratio": nil,
                "config_groups": [
                    "group_0": [
                        "targets": ["Linear"], "input_activations": nil, "output_activations": nil,
                        "weights": [
                            "num_bits": 4, "type": "int", "symmetric": true, "strategy": "group",
                            "group_size": .integer(Int64(int4GroupSize)), "dynamic": false, "observer": "minmax",
                            "actorder": nil, "block_structure": nil,
                        ],
                    ]
                ],
                "ignore": .array(ArchitectureTable.kimiInt4Unquantized.map { .string($0) }),
            ]
        }
        return .object(object)
    }

    /// Writes the checkpoint into `directory`: staged beside it and moved into place whole, so the directory is either
    /// untouched or the complete checkpoint.
    public static func write(_ options: SyntheticOptions, to directory: String) throws -> SyntheticSummary {
        let parent = (directory as NSString).deletingLastPathComponent
        if !parent.isEmpty { try makeDirectory(parent) }
        let staging = try StagedDirectory(path: directory)
        do {
            let summary = try write(options, into: staging.temporaryPath)
            try staging.finish()
            return SyntheticSummary(
                directory: directory, shardFiles: summary.shardFiles, tensorCount: summary.tensorCount, totalBytes: summary.totalBytes)
        } catch {
            staging.abandon()
            throw error
        }
    }

    private static func write(_ options: SyntheticOptions, into directory: String) throws -> SyntheticSummary {
        let configValue = config(for: options)
        let spec = try ModelSpec(config: configValue, file: "synth config")
        let plan = StoragePlan(spec: spec, dtype: options.dtype)

        let shardLimit = options.shardBytes ?? options.preset.shardBytes
        var shards: [[StoredTensor]] = [[]]
        var shardSize = 0
        for tensor in plan.tensors {
            let size = tensor.spec.byteCount ?? 0
            if shardSize > 0 && shardSize + size > shardLimit { shards.append([]); shardSize = 0 }
            shards[shards.count - 1].append(tensor)
            shardSize += size
        }
        let names =
            shards.count == 1
            ? ["model.safetensors"]
            : (1...shards.count).map {
                "model-\(pad($0))-of-\(pad(shards.count)).safetensors"
            }
        var weightMap = JSONObject()
        var totalBytes = 0
        for (shard, name) in zip(shards, names) {
            let writer = try SafetensorsWriter(path: directory + "/" + name, tensors: shard.map(\.spec), metadata: ["format": "pt"])
            // Sparse checkpoints still carry their metadata tensors (INT4 `weight_shape`): readers check them.
            for tensor in shard where !options.sparse || tensor.isMetadata { try tensor.fill(writer, seed: options.seed) }
            try writer.finish()
            for tensor in shard { weightMap[tensor.spec.name] = .string(name) }
            totalBytes += shard.reduce(0) { $0 + ($1.spec.byteCount ?? 0) }
        }
        try AtomicFile.write(SyntheticTokenizer.json(spec: spec).prettyPrinted(), to: directory + "/tokenizer.json")
        if names.count > 1 {
            var sorted = JSONObject()
            for key in weightMap.keys.sorted() { sorted[key] = weightMap[key] }
            let index: JSONValue = ["metadata": ["total_size": .integer(Int64(totalBytes))], "weight_map": .object(sorted)]
            try AtomicFile.write(index.prettyPrinted(), to: directory + "/" + Checkpoint.indexFileName)
        }
        try AtomicFile.write(configValue.prettyPrinted(), to: directory + "/config.json")
        return SyntheticSummary(directory: directory, shardFiles: names, tensorCount: plan.tensors.count, totalBytes: totalBytes)
    }

    private static func pad(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    private static func makeDirectory(_ path: String) throws(FileIOError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST { throw FileIOError(file: current, operation: "mkdir", code: errno) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
