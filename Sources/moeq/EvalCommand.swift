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

    func validate() throws {
        guard (tokens == nil) != (text == nil) else { throw ValidationError("give exactly one of --tokens and --text") }
    }

    func run() throws {
        try reportingErrors {
            let ids = try tokenIDs(tokens: tokens, text: text, tokenizerDirectory: model)
            let (logits, vocabulary) = try ReferenceModel.logits(checkpointPath: model, tokens: ids)
            if let logitsOut { try NumpyFile.write(logits, shape: [ids.count, vocabulary], to: logitsOut) }
            let score = WindowScore(logits: logits, tokens: ids, vocabulary: vocabulary)
            if json {
                let document: JSONValue = ["tokens": .integer(Int64(score.tokens)), "scored": .integer(Int64(score.scored)),
                                           "mean_nll": .double(score.meanNegativeLogLikelihood), "perplexity": .double(score.perplexity)]
                print(document.prettyPrinted(), terminator: "")
            } else {
                print(String(format: "%d tokens, %d scored: mean NLL %.6f, perplexity %.4f", score.tokens, score.scored, score.meanNegativeLogLikelihood, score.perplexity))
            }
        }
    }
}

/// Token ids from --tokens (ids) or --text (tokenized with the tokenizer.json in `tokenizerDirectory`).
func tokenIDs(tokens: String?, text: String?, tokenizerDirectory: String) throws -> [Int] {
    if let tokens { return try readTokens(tokens) }
    guard let text, let content = FileManager.default.contents(atPath: text) else { throw ValidationError("cannot read --text") }
    let tokenizer = try TokenizerLoader.load(directory: tokenizerDirectory)
    return tokenizer.encode(String(decoding: content, as: UTF8.self))
}

/// The BOS id when the model's tokenizer adds one (tokenizer_config.json `add_bos_token` and config.json
/// `bos_token_id`), as llama.cpp's `add_bos_token` key says; nil otherwise.
func beginningOfSequence(directory: String) -> Int? {
    func object(_ name: String) -> JSONValue? {
        FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent(name)).flatMap { try? JSONParser.parse([UInt8]($0)) }
    }
    guard object("tokenizer_config.json")?["add_bos_token"]?.boolValue == true else { return nil }
    return object("config.json")?["bos_token_id"]?.intValue
}

/// Token ids from a .npy of int32/int64 or a text file of whitespace-separated ids.
func readTokens(_ path: String) throws -> [Int] {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
    if path.hasSuffix(".npy") {
        guard data.count > 10, data[0] == 0x93 else { throw ValidationError("\(path) is not a .npy file") }
        let length = Int(data[8]) | Int(data[9]) << 8
        guard data.count >= 10 + length else { throw ValidationError("\(path): truncated header") }
        let header = String(decoding: data[10..<(10 + length)], as: UTF8.self)
        let body = data[(10 + length)...]
        if header.contains("'<i8'") {
            return body.withUnsafeBytes { raw in (0..<(raw.count / 8)).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) } }
        }
        if header.contains("'<i4'") {
            return body.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) } }
        }
        throw ValidationError("\(path): token .npy must be int32 or int64 (<i4, <i8)")
    }
    let words = String(decoding: data, as: UTF8.self).split(whereSeparator: { $0.isWhitespace })
    return try words.map { word in
        guard let id = Int(word) else { throw ValidationError("\(path): \"\(word)\" is not a token id") }
        return id
    }
}
