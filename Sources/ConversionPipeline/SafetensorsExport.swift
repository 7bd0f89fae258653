// `moeq convert SRC -o DIR --format safetensors --recipe BF16|F16|F32`: a Hugging Face checkpoint in plain floats
// from any source encoding (FP8 with block scales → BF16, compressed-tensors INT4 → BF16, …), for tools that
// do not read the source's quantization. Streams weight by weight, row chunk by row chunk, like the GGUF path;
// shards at `maxShardBytes` with model.safetensors.index.json, as transformers' save_pretrained does.
import Foundation
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats

public enum SafetensorsExport {
    public struct Summary: Sendable {
        public let files: [String]
        public let tensors: Int
        public let bytes: Int
    }

    /// Files copied beside the weights when present (config.json is rewritten without quantization_config).
    static let companions = [
        "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "tiktoken.model", "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model",
    ]

    public static func run(
        source: String, output: String, recipe: RecipeName, maxShardBytes: Int = 5_000_000_000, threads: Int
    ) throws -> Summary {
        let type: QuantType, dtype: SafetensorsDType
        switch recipe {
        case .bf16: (type, dtype) = (.bf16, .bf16)
        case .f16: (type, dtype) = (.f16, .f16)
        case .f32: (type, dtype) = (.f32, .f32)
        default:
            throw ConversionError.shape(
                tensor: "(all)", reason: "safetensors output holds plain floats: use --recipe BF16, F16 or F32, not \(recipe.rawValue)")
        }
        let checkpoint = try Checkpoint(path: source)
        let configPath = (checkpoint.directory as NSString).appendingPathComponent("config.json")
        let config: JSONValue
        do { config = try JSONParser.parse(file: configPath) } catch {
            throw CatalogError.unreadable(file: configPath, reason: error.reasonWithoutFile)
        }
        let spec = try ModelSpec(config: config, file: configPath)
        let layout = spec.tensorLayout
        try layout.checkTensorCount(stored: checkpoint.tensors.count, config: configPath)
        let resolver = WeightResolver(checkpoint: checkpoint, quantization: spec.quantization)
        try layout.check(try resolver.allWeights(), directory: checkpoint.directory, config: configPath)
        // Written into a staging directory and moved into place whole: the output is the new model or untouched.
        let staging = try StagedDirectory(path: output)
        do {
            let summary = try write(
                checkpoint: checkpoint, resolver: resolver, config: config, type: type, dtype: dtype, into: staging,
                maxShardBytes: maxShardBytes, threads: threads)
            try staging.finish()
            return summary
        } catch {
            staging.abandon()
            throw error
        }
    }

    private static func write(
        checkpoint: Checkpoint, resolver: WeightResolver, config: JSONValue, type: QuantType, dtype: SafetensorsDType,
        into staging: StagedDirectory, maxShardBytes: Int, threads: Int
    ) throws -> Summary {
        let output = staging.temporaryPath

        // Layout first: every tensor's name, dtype (F32 sources stay F32), shape, and its file.
        let weights = try resolver.allWeights()
        var shards: [[(weight: SourceWeight, spec: TensorSpec)]] = [[]]
        var shardBytes = 0
        for weight in weights {
            let keepF32: Bool
            if case .plain(let location) = weight.encoding { keepF32 = location.info.dtype == .f32 } else { keepF32 = false }
            let tensor = TensorSpec(name: weight.name, dtype: keepF32 ? .f32 : dtype, shape: weight.shape)
            let bytes = tensor.byteCount ?? 0
            if shardBytes > 0 && shardBytes + bytes > maxShardBytes { shards.append([]); shardBytes = 0 }
            shards[shards.count - 1].append((weight, tensor))
            shardBytes += bytes
        }
        let names =
            shards.count == 1
            ? ["model.safetensors"] : (1...shards.count).map { String(format: "model-%05d-of-%05d.safetensors", $0, shards.count) }
        var weightMap: [(String, JSONValue)] = []
        var total = 0
        for (shard, name) in zip(shards, names) {
            let path = (output as NSString).appendingPathComponent(name)
            let writer = try SafetensorsWriter(path: path, tensors: shard.map(\.spec), metadata: ["format": "pt"])
            do {
                for (weight, tensor) in shard {
                    try fill(weight, type: tensor.dtype == .f32 ? .f32 : type, writer: writer, threads: threads)
                    weightMap.append((tensor.name, .string(name)))
                    total += tensor.byteCount ?? 0
                }
                try writer.finish()
            } catch {
                writer.abandon()
                throw error
            }
        }
        if shards.count > 1 {
            let index: JSONValue = ["metadata": ["total_size": .integer(Int64(total))], "weight_map": .object(JSONObject(weightMap))]
            try AtomicFile.write(index.prettyPrinted(), to: (output as NSString).appendingPathComponent(Checkpoint.indexFileName))
        }
        for companion in companions {
            let from = (checkpoint.directory as NSString).appendingPathComponent(companion)
            if PositionalFile.exists(from) {
                try AtomicFile.write(try PositionalFile.readAll(from), to: (output as NSString).appendingPathComponent(companion))
            }
        }
        // config.json last: the weights are plain floats now, so the source's quantization_config goes.
        var plain = config
        if var object = plain.objectValue {
            object["quantization_config"] = nil
            if var text = object["text_config"]?.objectValue { text["quantization_config"] = nil; object["text_config"] = .object(text) }
            plain = .object(object)
        }
        try AtomicFile.write(plain.prettyPrinted(), to: (output as NSString).appendingPathComponent("config.json"))
        return Summary(files: names, tensors: weights.count, bytes: total)
    }

    /// Decodes `weight` in row chunks and writes it as `type` (F32 / F16 / BF16, round-to-nearest-even).
    static func fill(_ weight: SourceWeight, type: QuantType, writer: SafetensorsWriter, threads: Int) throws {
        let width = max(weight.columns, 1), rows = weight.rows, rowBytes = width * (type == .f32 ? 4 : 2)
        let chunk = max(1, (4 << 20) / max(width * 4, 1))
        var values = [Float](repeating: 0, count: chunk * width)
        var bytes = [UInt8](repeating: 0, count: chunk * rowBytes)
        var first = 0
        while first < rows {
            let count = min(chunk, rows - first)
            try values.withUnsafeMutableBufferPointer {
                try weight.decodeRows(first..<(first + count), into: UnsafeMutableBufferPointer(rebasing: $0[0..<(count * width)]))
            }
            try values.withUnsafeBufferPointer { source in
                try bytes.withUnsafeMutableBytes { destination in
                    let output = UnsafeMutableRawBufferPointer(rebasing: destination[0..<(count * rowBytes)])
                    do {
                        try QuantCodec.quantize(
                            type, UnsafeBufferPointer(rebasing: source[0..<(count * width)]), rows: count, width: width, into: output,
                            threads: threads)
                    } catch QuantError.nonFinite(let index, let value) {
                        throw ConversionError.nonFinite(
                            tensor: weight.name, source: weight.name, file: weight.storedTensors.first?.file.path ?? "",
                            row: first + index / width, column: index % width, value: value)
                    }
                    try writer.write(weight.name, bytes: UnsafeRawBufferPointer(output), at: first * rowBytes)
                }
            }
            weight.releasePages(rows: first..<(first + count))
            first += count
        }
        weight.releasePages()
    }
}
