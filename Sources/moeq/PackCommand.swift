// `moeq pack` / `moeq unpack`: lossless byte-plane zstd archives of checkpoints (formats/moeq-pack.md).
import ArgumentParser
import Foundation
import TensorFormats

struct PackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack",
        abstract: "Losslessly compress a checkpoint directory: tensor bytes split into byte planes, each plane zstd-compressed.")

    @Argument(help: "Checkpoint directory.") var path: String
    @Option(name: .shortAndLong, help: "Archive directory to create.") var output: String
    @Option(parsing: .unconditional, help: "zstd level (1–19).") var level: Int32 = 3
    @Flag(help: "Print a JSON summary (files, bytes, ratio, resources: peak RSS, bytes read and written).") var json = false
    @OptionGroup var outputs: OutputOptions

    func validate() throws { guard (1...19).contains(level) else { throw ValidationError("--level must be 1…19") } }

    func run() throws {
        try reportingErrors {
            try checkOutputs([.directory(output)], inputs: [path], force: outputs.force)
            let summary = try BytePlanePack.pack(directory: path, output: output, level: level)
            if json {
                let document: JSONValue = [
                    "output": .string(output), "files": .integer(Int64(summary.files)),
                    "original_bytes": .integer(Int64(summary.originalBytes)), "packed_bytes": .integer(Int64(summary.packedBytes)),
                    "ratio": .double(summary.ratio), "resources": ResourceUsage.shared.object,
                ]
                print(document.prettyPrinted(), terminator: "")
                return
            }
            print(
                """
                packed \(summary.files) files: \(humanBytes(summary.originalBytes)) → \(humanBytes(summary.packedBytes)) (ratio \
                \(String(format: "%.3f", summary.ratio)), \(String(format: "%.1f", 100 / max(summary.ratio, 1e-9)))% of the original)
                """
            )
        }
    }
}

struct UnpackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack", abstract: "Restore a `moeq pack` archive bit for bit (every file's XXH3 is checked).")

    @Argument(help: "Archive directory.") var path: String
    @Option(name: .shortAndLong, help: "Directory to restore into.") var output: String
    @Flag(help: "Print a JSON summary (files, bytes, resources: peak RSS, bytes read and written).") var json = false
    @OptionGroup var outputs: OutputOptions

    func run() throws {
        try reportingErrors {
            try checkOutputs([.directory(output)], inputs: [path], force: outputs.force)
            let summary = try BytePlanePack.unpack(input: path, directory: output)
            if json {
                let document: JSONValue = [
                    "output": .string(output), "files": .integer(Int64(summary.files)),
                    "original_bytes": .integer(Int64(summary.originalBytes)), "resources": ResourceUsage.shared.object,
                ]
                print(document.prettyPrinted(), terminator: "")
                return
            }
            print("restored \(summary.files) files, \(humanBytes(summary.originalBytes)), all XXH3 verified")
        }
    }
}
