// `moeq synth`: write a deterministic HF-layout checkpoint of a supported architecture.
import ArgumentParser
import ConversionPipeline
import ModelCatalog

extension Architecture: ExpressibleByArgument {}
extension SyntheticDType: ExpressibleByArgument {}

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a deterministic synthetic checkpoint (config.json, sharded safetensors + index, tokenizer.json).",
        discussion:
            """
            Presets: \(ModelPresets.names.joined(separator: ", ")). Real-shape presets are meant for --sparse (all-zero data, real \
            names, shapes, dtypes and shards) or with --layers N for a dense slice.
            """
    )

    @Option(help: "Architecture: \(Architecture.allCases.filter(\.isConvertible).map(\.rawValue).joined(separator: ", ")).")
    var arch: Architecture

    @Option(help: "Shape preset: tiny, or a real model's name.")
    var preset: String

    @Option(help: "Output directory.")
    var out: String

    @Option(
        help:
            """
            Storage of linear weights: bf16, f32, fp8 (128×128 block scales), int4 (compressed-tensors, routed experts). Default: the \
            preset's own.
            """
    )
    var dtype: SyntheticDType?

    @Option(parsing: .unconditional, help: "Seed for the weights.")
    var seed: UInt64 = 0

    @Flag(help: "Leave all tensor data zero (sparse files): header-scale tests without terabytes.")
    var sparse = false

    @Option(parsing: .unconditional, help: "Keep only the first N layers (real widths), at most the preset's.")
    var layers: Int?

    @Option(parsing: .unconditional, help: "Maximum shard size in bytes (default: the preset's).")
    var shardBytes: Int?

    @OptionGroup var outputs: OutputOptions

    func validate() throws {
        guard arch.isConvertible else {
            throw ValidationError(
                """
                \(arch.rawValue) presets are planning specs only (`moeq plan`); synth writes deepseek_v3, qwen3_moe and mixtral \
                checkpoints
                """
            )
        }
        guard ModelPresets.named(preset, architecture: arch) != nil else {
            // A broken bundled spec hides every real-shape preset: name that file rather than the preset.
            do { _ = try ModelPresets.bundled() } catch { throw ValidationError("\(error)") }
            let valid = ModelPresets.all.filter { $0.architecture == arch && !$0.name.hasPrefix("tiny-") }.map(\.name)
            throw ValidationError(
                """
                preset \"\(preset)\" does not exist for \(arch.rawValue); choose \
                tiny\(valid.isEmpty ? "" : " or " + valid.joined(separator: ", "))
                """
            )
        }
        if let layers, let chosen = ModelPresets.named(preset, architecture: arch) {
            let available = (try? ModelSpec(config: chosen.config).layerCount) ?? 0
            guard (1...max(available, 1)).contains(layers) else {
                throw ValidationError("--layers must be in 1…\(available) (the preset's layers), not \(layers)")
            }
        }
        if let shardBytes, !(1_000_000...(1 << 40)).contains(shardBytes) { throw ValidationError("--shard-bytes must be in 1000000…2^40") }
    }

    func run() throws {
        try reportingErrors {
            guard let chosen = ModelPresets.named(preset, architecture: arch) else { return }
            try checkOutputs([.directory(out)], inputs: [], force: outputs.force)
            var options = SyntheticOptions(preset: chosen, dtype: dtype ?? SyntheticDType(rawValue: chosen.nativeDType) ?? .bf16)
            options.seed = seed
            options.sparse = sparse
            options.layers = layers
            options.shardBytes = shardBytes
            let summary = try SyntheticCheckpoint.write(options, to: out)
            print(
                """
                wrote \(summary.directory): \(summary.shardFiles.count) shard(s), \(grouped(summary.tensorCount)) tensors, \
                \(humanBytes(summary.totalBytes))\(sparse ? " (sparse)" : "")
                """
            )
        }
    }
}
