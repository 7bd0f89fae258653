// Token ids for eval, validate and imatrix: from --tokens (a .npy of int32/int64, or whitespace-separated ids) or from
// --text (encoded with the model's tokenizer), every id checked against the model's vocabulary, every failure naming
// the file.
import ArgumentParser
import Foundation
import ReferenceEngine
import TensorFormats

/// A token input that cannot be used: the file and what is wrong.
enum TokenInputError: Error, CustomStringConvertible {
    case invalid(file: String, reason: String)
    case empty(file: String, reason: String)
    var description: String {
        switch self {
        case let .invalid(file, reason): "\(file): \(reason)"
        case let .empty(file, reason): "\(file): nothing to evaluate: \(reason)"
        }
    }
}

/// Token ids from --tokens (ids) or --text (tokenized with the tokenizer in `tokenizerDirectory`), each in
/// 0..<`vocabularySize`. An empty input is an error.
func tokenIDs(tokens: String?, text: String?, tokenizerDirectory: String, vocabularySize: Int) throws -> [Int] {
    let ids: [Int]
    let file: String
    if let tokens {
        ids = try readTokens(tokens)
        file = tokens
        for (index, id) in ids.enumerated() where !(0..<vocabularySize).contains(id) {
            throw TokenInputError.invalid(
                file: tokens, reason: "token \(index) is id \(id), outside the model's vocabulary 0…\(vocabularySize - 1)")
        }
    } else if let text {
        let content: String
        do { content = try PositionalFile.readText(text) } catch {
            throw TokenInputError.invalid(file: text, reason: error.reasonWithoutFile)
        }
        let tokenizer = try TokenizerLoader.load(directory: tokenizerDirectory, vocabularySize: vocabularySize)
        ids = try tokenizer.encode(content)
        file = text
    } else {
        throw ValidationError("give exactly one of --tokens and --text")
    }
    guard !ids.isEmpty else { throw TokenInputError.empty(file: file, reason: "it holds no tokens") }
    return ids
}

/// Windows of `context` ids as llama-perplexity and llama-imatrix make them: a text is tokenized with BOS first
/// when the model's tokenizer adds one, and every window's first id becomes BOS.
func llamaWindows(
    tokens: String?, text: String?, directory: String, vocabularySize: Int, context: Int, maxChunks: Int?, what: String = "--ctx"
) throws -> [[Int]] {
    let bos = try beginningOfSequence(directory: directory)
    let ids =
        (text != nil ? bos.map { [$0] } ?? [] : [])
        + (try tokenIDs(tokens: tokens, text: text, tokenizerDirectory: directory, vocabularySize: vocabularySize))
    guard ids.count >= context else {
        throw TokenInputError.empty(
            file: text ?? tokens ?? directory, reason: "\(ids.count) tokens, fewer than one chunk of \(what) \(context)")
    }
    return QuantValidation.windows(tokens: ids, context: context, maxChunks: maxChunks, beginningOfSequence: bos)
}

/// The BOS id when the model's tokenizer adds one (tokenizer_config.json `add_bos_token` and config.json
/// `bos_token_id`), as llama.cpp's `add_bos_token` key says; nil otherwise.
func beginningOfSequence(directory: String) throws -> Int? {
    func object(_ name: String) throws -> JSONValue? {
        let path = (directory as NSString).appendingPathComponent(name)
        return PositionalFile.exists(path) ? try JSONParser.parse(file: path) : nil
    }
    guard try object("tokenizer_config.json")?["add_bos_token"]?.boolValue == true else { return nil }
    return try object("config.json")?["bos_token_id"]?.intValue
}

/// Token ids from a .npy of int32/int64 or a text file of whitespace-separated ids.
func readTokens(_ path: String) throws -> [Int] {
    let bytes: [UInt8]
    do { bytes = try PositionalFile.readAll(path) } catch { throw TokenInputError.invalid(file: path, reason: error.reasonWithoutFile) }
    guard path.hasSuffix(".npy") else {
        let words = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0.isWhitespace })
        return try words.map { word in
            guard let id = Int(word) else { throw TokenInputError.invalid(file: path, reason: "\"\(word.prefix(40))\" is not a token id") }
            return id
        }
    }
    return try bytes.withUnsafeBytes { raw in
        var reader = BinaryReader(raw)
        guard reader.expect([0x93] + Array("NUMPY".utf8)), reader.remaining >= 4 else {
            throw TokenInputError.invalid(file: path, reason: "not a .npy file")
        }
        reader.position = 8
        let header: String
        do { header = String(decoding: try reader.slice(Int(try reader.integer(UInt16.self))), as: UTF8.self) } catch {
            throw TokenInputError.invalid(file: path, reason: "the .npy header runs past the file")
        }
        let width: Int
        if header.contains("'<i8'") {
            width = 8
        } else if header.contains("'<i4'") {
            width = 4
        } else {
            throw TokenInputError.invalid(file: path, reason: "token .npy must be int32 or int64 (<i4, <i8)")
        }
        guard !header.contains("'fortran_order': True") else {
            throw TokenInputError.invalid(file: path, reason: "Fortran-ordered arrays are not read")
        }
        guard let shape = NumpyFile.shape(inHeader: header) else {
            throw TokenInputError.invalid(file: path, reason: "the .npy header has no readable 'shape'")
        }
        let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        guard count <= reader.remaining / width, count * width == reader.remaining else {
            throw TokenInputError.invalid(
                file: path,
                reason: "shape \(shape) needs \(count <= Int.max / width ? "\(count * width)" : "more than 2^63") data bytes; "
                    + "the file has \(reader.remaining) after its header (cut short, or more data than the header says)")
        }
        var ids: [Int] = []
        ids.reserveCapacity(reader.remaining / width)
        while reader.remaining >= width {
            ids.append(width == 8 ? Int(try reader.integer(Int64.self)) : Int(try reader.integer(Int32.self)))
        }
        return ids
    }
}
