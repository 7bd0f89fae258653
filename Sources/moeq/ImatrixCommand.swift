// `moeq imatrix MODEL (--text F | --tokens F) -o OUT.gguf`: importance matrix in llama.cpp's format.
import ArgumentParser
import Foundation
import ReferenceEngine
import TensorFormats

struct ImatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imatrix",
        abstract:
            """
            Collect an importance matrix (llama.cpp's GGUF imatrix format, counted per expert) and routing statistics with the \
            reference engine.
            """
    )

    @Argument(help: "Checkpoint directory.") var model: String
    @Option(help: "Text file (tokenized with the model's tokenizer.json).") var text: String?
    @Option(help: "Token ids (.npy or whitespace-separated).") var tokens: String?
    @Option(name: .shortAndLong, help: "Output imatrix .gguf (usable by llama-quantize --imatrix and moeq convert --imatrix).") var output:
        String
    @Option(parsing: .unconditional, help: "Tokens per chunk.") var ctx = 128
    @Option(parsing: .unconditional, help: "At most this many chunks.") var chunks: Int?
    @Option(
        help: ArgumentHelp(
            "Memory for the chunks' hidden states (layer-major; default a quarter of RAM), beyond it a scratch file. E.g. 8GiB: "
                + "\(ByteSize.units)."))
    var memory: ByteSize?
    @Flag(help: "Print a JSON summary (chunks, idle experts, resources: peak RSS, bytes read and written).") var json = false
    @OptionGroup var outputs: OutputOptions

    func validate() throws {
        guard (tokens == nil) != (text == nil) else { throw ValidationError("give exactly one of --tokens and --text") }
        guard (2...(1 << 20)).contains(ctx) else { throw ValidationError("--ctx must be in 2…1048576") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1") }
        if model.hasSuffix(".gguf") || OutputPolicy.starts(model, with: Array("GGUF".utf8)) {
            throw ValidationError(
                "\(model) is a GGUF: moeq imatrix runs on the checkpoint directory the imatrix is for (its config.json, tokenizer and weights)"
            )
        }
    }

    func run() throws {
        try reportingErrors {
            try checkOutputs(
                [
                    .file(
                        output, companions: [StagedFile.temporaryPath(for: output), OutputManifest.path(for: output)],
                        writtenByMoeq: isMoeqImatrix)
                ],
                inputs: [model, text, tokens], force: outputs.force)
            let weights = try ReferenceModel.weights(path: model)
            warnBeyondTrainedContext(ctx, spec: weights.spec, what: "--ctx")
            // As llama-imatrix: BOS first when the tokenizer adds one, and every chunk starts with BOS.
            let windows = try llamaWindows(
                tokens: tokens, text: text, directory: model, vocabularySize: weights.spec.vocabularySize, context: ctx, maxChunks: chunks)
            let collector = ImportanceCollector(spec: weights.spec)
            // Layer-major (each layer's weights decoded once for all chunks); the output head is not collected.
            var engine = try ReferenceModel.engine(weights: weights)
            engine.observer = collector
            _ = try LayerMajor.hiddenStates(engine, windows: windows, budget: memory?.bytes ?? LayerMajor.defaultBudget)
            let done = windows.count
            try collector.write(to: output, dataset: (text ?? tokens ?? "") as String, chunks: done, chunkSize: ctx)
            if json {
                let summary: JSONValue = [
                    "output": .string(output), "chunks": .integer(Int64(done)), "ctx": .integer(Int64(ctx)),
                    "idle_experts": .integer(Int64(collector.idleExperts.count)), "resources": ResourceUsage.shared.object,
                ]
                print(summary.prettyPrinted(), terminator: "")
                return
            }
            print("wrote \(output): \(done) chunks × \(ctx) tokens")
            let idle = collector.idleExperts
            if !idle.isEmpty {
                print(
                    "experts that never fired (\(idle.count); neutral importance 1.0 when used): "
                        + idle.prefix(20).map { "\($0.tensor)[\($0.expert)]" }.joined(separator: ", "))
            }
            print("tokens routed per expert:")
            for (tensor, counts) in collector.routing { print("  \(tensor): \(counts.map(String.init).joined(separator: " "))") }
        }
    }
}
