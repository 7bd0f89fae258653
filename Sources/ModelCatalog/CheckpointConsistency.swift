// Does a checkpoint hold what its config.json says? Checked from headers before any command reads tensor data:
// every logical weight's shape against the table's, tensors the spec does not have (a layer or expert beyond the
// config's counts, an unknown name), and a config that claims far more tensors than the files hold — so memory and
// time stay bounded by the checkpoint's real size, never by a config number.
import TensorFormats

/// A checkpoint that disagrees with its config.json.
public enum ConsistencyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A tensor whose shape is not the one config.json implies.
    case shape(file: String, tensor: String, byteOffset: Int, found: [Int], expected: [Int], config: String)
    /// Tensors config.json does not describe.
    case unknownTensors(directory: String, names: [String], config: String)
    /// config.json describes many more tensors than the checkpoint holds.
    case tensorCount(config: String, described: Int, stored: Int, summary: String)

    public var description: String {
        switch self {
        case let .shape(file, tensor, offset, found, expected, config):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): shape \(found), but \(config) implies \(expected); "
                + "the config and the weights belong to different models (or the config was edited)"
        case let .unknownTensors(directory, names, config):
            let shown =
                names.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ") + (names.count > 5 ? " and \(names.count - 5) more" : "")
            return "\(directory): \(names.count) tensor\(names.count == 1 ? "" : "s") that \(config) does not describe (\(shown)); "
                + "check num_hidden_layers / expert counts in \(config), or pass --skip-unknown to go on without them"
        case let .tensorCount(config, described, stored, summary):
            return "\(config): describes \(described) tensors (\(summary)), but the checkpoint holds only \(stored); "
                + "the config and the weights belong to different models (or the config was edited)"
        }
    }
}

extension TensorLayout {
    /// The config.json path named in messages.
    private var configName: String { "config.json" }

    /// Refuses a config that describes several times more tensors than `stored` (before anything is expanded).
    public func checkTensorCount(stored: Int, config: String) throws(ConsistencyError) {
        let described = expectedTensorCount
        guard described > 2 * stored + 64 else { return }
        let summary = "\(spec.layerCount) layers, \(spec.routedExpertCount) experts, \(spec.nextTokenPredictionLayers) MTP layers"
        throw .tensorCount(config: config, described: described, stored: stored, summary: summary)
    }

    /// Checks every logical weight of a checkpoint against the spec; returns the names it does not describe (when
    /// `allowUnknown`) or refuses them. Shape mismatches are always refused.
    @discardableResult
    public func check(
        _ weights: [SourceWeight], directory: String, config: String, allowUnknown: Bool = false
    ) throws(ConsistencyError) -> [String] {
        var unknown: [String] = []
        for weight in weights {
            guard let shape = expectedShape(of: weight.name) else {
                unknown.append(weight.name)
                continue
            }
            guard shape == weight.shape else {
                let stored = weight.storedTensors.first
                throw .shape(
                    file: stored?.file.path ?? directory, tensor: weight.name,
                    byteOffset: stored.map { $0.file.fileOffset(of: $0.info) } ?? 0, found: weight.shape, expected: shape, config: config)
            }
        }
        if !unknown.isEmpty && !allowUnknown { throw .unknownTensors(directory: directory, names: unknown, config: config) }
        return unknown
    }
}
