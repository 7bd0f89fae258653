// `moeq eval MODEL --tokens FILE`: logits of one window from the reference engine, with NLL and perplexity.
import ArgumentParser
import Foundation
import ReferenceEngine
import TensorFormats

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Run the reference engine (deepseek_v3 / Kimi, qwen3_moe, mixtral safetensors) on one window of token ids.")

    @Argument(help: "Checkpoint directory.") var model: String
    @Option(help: "Token ids: a .npy of int32/int64, or a text file of whitespace-separated ids.") var tokens: String?
    @Option(help: "A text file, tokenized with the model's tokenizer.json (byte-level BPE).") var text: String?
    @Option(help: "Write float32 logits [tokens, vocab] to this .npy.") var logitsOut: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var outputs: OutputOptions

    func validate() throws {
        guard (tokens == nil) != (text == nil) else { throw ValidationError("give exactly one of --tokens and --text") }
    }

    func run() throws {
        try reportingErrors {
            if let logitsOut { try checkOutputs([.file(logitsOut)], inputs: [model, tokens, text], force: outputs.force) }
            let weights = try ReferenceModel.weights(path: model)
            let ids = try tokenIDs(tokens: tokens, text: text, tokenizerDirectory: model, vocabularySize: weights.spec.vocabularySize)
            guard ids.count >= 2 else {
                throw TokenInputError.empty(
                    file: tokens ?? text ?? model,
                    reason: "\(ids.count) token\(ids.count == 1 ? "" : "s"); at least 2 are needed to score one prediction")
            }
            warnBeyondTrainedContext(ids.count, spec: weights.spec, what: "the window")
            let vocabulary = weights.spec.vocabularySize
            let logits = try ReferenceModel.logits(weights: weights, tokens: ids)
            if let logitsOut { try NumpyFile.write(logits, shape: [ids.count, vocabulary], to: logitsOut) }
            let score = WindowScore(logits: logits, tokens: ids, vocabulary: vocabulary)
            if json {
                let document: JSONValue = [
                    "tokens": .integer(Int64(score.tokens)), "scored": .integer(Int64(score.scored)),
                    "mean_nll": .double(score.meanNegativeLogLikelihood), "perplexity": .double(score.perplexity),
                    "resources": ResourceUsage.shared.object,
                ]
                print(document.prettyPrinted(), terminator: "")
            } else {
                print(
                    String(
                        format: "%d tokens, %d scored: mean NLL %.6f, perplexity %.4f", score.tokens, score.scored,
                        score.meanNegativeLogLikelihood, score.perplexity))
            }
        }
    }
}
