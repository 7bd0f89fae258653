// `moeq merge PART... -o OUT.gguf`: assemble the parts of a `convert --shard k/n` run into the final GGUF.
import ArgumentParser
import ConversionPipeline
import Foundation
import TensorFormats

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Assemble the part files of `moeq convert --shard k/n` into the final GGUF, checking every tensor's XXH3.",
        discussion:
            """
            All n parts of one layout are needed, each once. The output is written under a temporary name, fsynced and renamed; its \
            manifest sits beside it, as after a single-machine conversion.
            """
    )

    @Argument(help: "The part files (OUT.gguf.part-k-of-n).") var parts: [String]
    @Option(name: .shortAndLong, help: "Output .gguf file.") var output: String
    @Flag(help: "Print a JSON summary (bytes, tensors, resources: peak RSS, bytes read and written).") var json = false
    @OptionGroup var outputs: OutputOptions

    func run() throws {
        try reportingErrors {
            try checkOutputs(
                [
                    .file(
                        output, companions: [StagedFile.temporaryPath(for: output), OutputManifest.path(for: output)],
                        writtenByMoeq: isMoeqModel)
                ],
                inputs: parts, force: outputs.force)
            let started = Date()
            let merged = try ShardedConversion.merge(parts: parts, output: output)
            if json {
                let summary: JSONValue = [
                    "output": .string(output), "bytes": .integer(Int64(merged.bytes)), "tensors": .integer(Int64(merged.tensors)),
                    "parts": .integer(Int64(parts.count)), "seconds": .double(Date().timeIntervalSince(started)),
                    "resources": ResourceUsage.shared.object,
                ]
                print(summary.prettyPrinted(), terminator: "")
                return
            }
            print(
                """
                wrote \(output): \(humanBytes(merged.bytes)), \(merged.tensors) tensors from \(parts.count) parts in \
                \(String(format: "%.2f", Date().timeIntervalSince(started))) s
                """
            )
        }
    }
}
