// Every way the reference engine refuses to run, each naming the file, tensor or setting at fault.

public enum EngineError: Error, Sendable, CustomStringConvertible {
    case unsupported(String)
    case token(index: Int, id: Int, vocabulary: Int)
    /// A weight whose value count is not what the projection needs.
    case shape(what: String, expected: [Int], found: Int)
    /// A tensor the spec needs that the file lacks.
    case missingTensor(file: String, tensor: String)
    /// A GGUF tensor whose ggml shape differs from the spec's.
    case tensorShape(file: String, tensor: String, byteOffset: Int, found: [Int], expected: [Int])
    /// A GGUF of another model than the base.
    case notThisModel(file: String, reason: String)
    /// Nothing to score: no tokens, no window, an empty vocabulary.
    case noWork(String)
    /// The hidden-state scratch file (beyond the memory budget) could not be made, written or read.
    case scratch(String)
    /// A weight holding NaN or infinity.
    case nonFinite(file: String, tensor: String, index: Int, value: Float)
    /// A file of ours (sensitivity cache) that does not read as one.
    case unreadable(file: String, reason: String)

    public var description: String {
        switch self {
        case .unsupported(let what): "the reference engine does not run \(what) yet"
        case let .token(index, id, vocabulary): "token \(index) has id \(id), outside the vocabulary of \(vocabulary)"
        case let .shape(what, expected, found):
            "\(what): \(found) values, the spec needs \(expected.map(String.init).joined(separator: " × "))"
        case let .missingTensor(file, tensor):
            """
            \(file): no tensor \(tensor), which the model's config.json requires (an incomplete file, or a config.json that does not \
            match the weights)
            """
        case let .tensorShape(file, tensor, offset, found, expected):
            "\(file): tensor \(tensor) at byte \(offset): ggml shape \(found), the base's config.json implies \(expected)"
        case let .notThisModel(file, reason): "\(file): not a GGUF of this model: \(reason)"
        case .noWork(let reason): "nothing to evaluate: \(reason)"
        case .scratch(let reason):
            "hidden states beyond --memory go to a scratch file in $TMPDIR, and \(reason); set TMPDIR to a writable directory "
                + "with space, or give more --memory"
        case let .unreadable(file, reason): "\(file): \(reason)"
        case let .nonFinite(file, tensor, index, value):
            """
            \(file): tensor \(tensor) holds \(value) at value \(index), which is not finite: the file is damaged (re-download or \
            re-convert it)
            """
        }
    }
}
