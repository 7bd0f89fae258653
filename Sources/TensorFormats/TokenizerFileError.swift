// Every way a tokenizer file (tokenizer.json, tiktoken.model, tokenizer.model, tokenizer_config.json) can be wrong or
// fail to encode a text: the file, where, and what.

public enum TokenizerFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is unreadable, malformed or unsupported; `byteOffset` where known.
    case invalid(file: String, byteOffset: Int?, reason: String)
    /// The text holds something the tokenizer has no token for (a vocabulary without the 256 byte tokens).
    case cannotEncode(file: String, textOffset: Int, what: String)

    public var description: String {
        switch self {
        case let .invalid(file, offset, reason): "\(file): " + (offset.map { "byte \($0): " } ?? "") + reason
        case let .cannotEncode(file, offset, what):
            """
            \(file): cannot encode \(what) at byte \(offset) of the text (the vocabulary lacks its byte tokens); this tokenizer \
            cannot score this text
            """
        }
    }
}
