// `moeq validate QUANT --base BASE --tokens F`: a quantized GGUF (or checkpoint) against its base model.
import ArgumentParser
import Foundation
import ReferenceEngine
import TensorFormats

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Perplexity, ΔPPL with its 95 % interval, KL divergence, top-1 agreement and per-tensor error of a quantized model against its base (reference engine).",
        discussion: "Chunks of --ctx tokens, the second half of each scored (llama-perplexity's method). Base logits are recomputed per chunk, not stored.")

    @Argument(help: "The quantized model: a .gguf moeq or llama.cpp wrote, or a checkpoint directory.") var quant: String
    @Option(help: "The base checkpoint directory (its config.json also describes the GGUF).") var base: String
    @Option(help: "Token ids (.npy int32/int64 or whitespace-separated text).") var tokens: String?
    @Option(help: "A text file, tokenized with the base model's tokenizer.json.") var text: String?
    @Option(help: "Tokens per chunk.") var ctx = 128
    @Option(help: "At most this many chunks.") var chunks: Int?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard ctx >= 4 else { throw ValidationError("--ctx must be at least 4") }
        guard (tokens == nil) != (text == nil) else { throw ValidationError("give exactly one of --tokens and --text") }
    }

    func run() throws {
        try reportingErrors {
            // llama-perplexity: the text is tokenized with BOS first, and every chunk starts with BOS.
            let bos = beginningOfSequence(directory: base)
            let ids = (text != nil ? bos.map { [$0] } ?? [] : []) + (try tokenIDs(tokens: tokens, text: text, tokenizerDirectory: base))
            guard ids.count >= ctx else { throw ValidationError("the input has \(ids.count) tokens, fewer than --ctx \(ctx)") }
            let baseWeights = try ReferenceModel.weights(path: base)
            let quantWeights = try ReferenceModel.weights(path: quant, configDirectory: base)
            var report = try QuantValidation.run(quant: quantWeights, base: baseWeights, configDirectory: base, tokens: ids, context: ctx, maxChunks: chunks, beginningOfSequence: bos)
            if let gguf = quantWeights as? GGUFWeights { report.tensors = try QuantValidation.tensorErrors(quant: gguf, base: baseWeights) }
            if json {
                let document: JSONValue = [
                    "chunks": .integer(Int64(report.chunks)), "positions": .integer(Int64(report.positions)), "ctx": .integer(Int64(ctx)),
                    "ppl_base": .double(report.basePerplexity), "ppl_quant": .double(report.quantPerplexity),
                    "ppl_ratio": ["value": .double(report.ratio), "ci95": [.double(report.ratioLow), .double(report.ratioHigh)]],
                    "delta_ppl": ["value": .double(report.deltaPerplexity), "ci95": [.double(report.deltaLow), .double(report.deltaHigh)]],
                    "kld": ["mean": .double(report.meanKLD), "p99": .double(report.p99KLD), "max": .double(report.maxKLD)],
                    "top1_agreement": .double(report.top1Agreement), "rms_delta_p": .double(report.rmsDeltaP),
                    "tensors": .array(report.tensors.map { ["name": .string($0.name), "relative_rmse": .double($0.relativeRMSE),
                                                             "max_abs_error": .double($0.metrics.maxAbsoluteError), "cosine": .double($0.metrics.cosineSimilarity)] }),
                ]
                print(document.prettyPrinted(), terminator: "")
                return
            }
            print("\(report.chunks) chunks × \(ctx) tokens, \(report.positions) positions scored")
            print(String(format: "PPL base %.4f  quant %.4f  ratio %.5f [%.5f, %.5f]  ΔPPL %+.4f [%+.4f, %+.4f]",
                         report.basePerplexity, report.quantPerplexity, report.ratio, report.ratioLow, report.ratioHigh,
                         report.deltaPerplexity, report.deltaLow, report.deltaHigh))
            print(String(format: "KLD mean %.6f  p99 %.6f  max %.6f   top-1 agreement %.2f %%   RMS Δp %.4f",
                         report.meanKLD, report.p99KLD, report.maxKLD, 100 * report.top1Agreement, report.rmsDeltaP))
            if !report.tensors.isEmpty {
                print("\nworst tensors (relative RMSE, max |error|, cosine):")
                for tensor in report.tensors.prefix(10) {
                    print(String(format: "  %-56@ %.5f  %.5f  %.6f", tensor.name, tensor.relativeRMSE, tensor.metrics.maxAbsoluteError, tensor.metrics.cosineSimilarity))
                }
            }
        }
    }
}
