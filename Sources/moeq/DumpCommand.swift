// `moeq dump`: one tensor to .npy, decoded to f32 (FP8 block scales and packed INT4 applied) or raw.
import ArgumentParser
import Foundation
import ModelCatalog
import TensorFormats

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Write one tensor as .npy: its logical weight decoded to float32, or its stored bytes with --raw.")

    @Argument(help: "A checkpoint directory, .safetensors file, index.json, or a .gguf file (dequantized; --raw gives its bytes).")
    var path: String

    @Argument(help: "Tensor name (for packed INT4 weights, the logical `….weight` name).")
    var tensor: String

    @Option(name: .shortAndLong, help: "Output .npy file.")
    var output: String

    @Flag(help: "Write the stored element bytes unchanged (BF16/FP8 as unsigned bit patterns).")
    var raw = false

    @OptionGroup var outputs: OutputOptions

    func run() throws {
        try reportingErrors {
            try checkOutputs([.file(output, companions: [output + ".partial"])], inputs: [path], force: outputs.force)
            if path.hasSuffix(".gguf") {
                let file = try GGUFFile(path: path)
                guard let info = file.tensor(named: tensor) else { throw SafetensorsError.tensorNotFound(file: path, tensor: tensor) }
                let shape = Array(info.dimensions.reversed())
                if raw {
                    try NumpyFile.write(raw: file.data(of: info), descriptor: "|u1", shape: [info.byteCount], to: output)
                } else {
                    try NumpyFile.write(try file.dequantized(info), shape: shape, to: output)
                }
                return
            }
            let checkpoint = try Checkpoint(path: path)
            if raw {
                guard let location = checkpoint.location(of: tensor) else {
                    throw SafetensorsError.tensorNotFound(file: path, tensor: tensor)
                }
                guard let descriptor = NumpyFile.descriptor(for: location.info.dtype) else {
                    throw FormatError.unsupportedDType(
                        file: location.file.path, tensor: tensor, byteOffset: location.file.fileOffset(of: location.info),
                        dtype: location.info.dtype.rawValue)
                }
                try NumpyFile.write(raw: location.data, descriptor: descriptor, shape: location.info.shape, to: output)
                return
            }
            let configPath = (checkpoint.directory as NSString).appendingPathComponent("config.json")
            var quantization = SourceQuantization.none
            let resolver: WeightResolver
            if PositionalFile.exists(configPath) {
                // With a config, the tensor's shape is checked against it before its data is read.
                let spec = try ModelSpec(configFile: configPath)
                quantization = spec.quantization
                resolver = WeightResolver(checkpoint: checkpoint, quantization: quantization)
                let layout = spec.tensorLayout
                try layout.check(
                    [try resolver.weight(named: tensor)], directory: checkpoint.directory, config: configPath, allowUnknown: true)
            } else {
                resolver = WeightResolver(checkpoint: checkpoint, quantization: quantization)
            }
            let weight = try resolver.weight(named: tensor)
            try NumpyFile.write(try weight.decodeAll(), shape: weight.shape, to: output)
        }
    }
}
