// How a checkpoint's weights are quantized at the source, read from config.json's `quantization_config`.
import Foundation

/// The source quantization of a checkpoint (formats.md §3–4).
public enum SourceQuantization: Sendable, Equatable {
    /// Plain floats (BF16/F16/F32).
    case none
    /// DeepSeek/Kimi FP8 E4M3 weights with F32 `*_scale_inv` block scales.
    case fp8Block(blockRows: Int, blockColumns: Int)
    /// compressed-tensors pack-quantized integers.
    case compressedTensors(CompressedTensorsConfig)
    /// gpt-oss: routed experts as MXFP4 `_blocks` + E8M0 `_scales` (formats.md §2.4); read for planning only.
    case mxfp4

    /// Reads `quantization_config` (nil or absent → `.none`).
    public static func parse(_ config: JSONValue?) throws(FormatError) -> SourceQuantization {
        guard let config, !config.isNull else { return .none }
        guard let method = config["quant_method"]?.stringValue else {
            throw .invalidConfig(field: "quantization_config.quant_method", reason: "missing")
        }
        switch method {
        case "fp8":
            let block = config["weight_block_size"]?.arrayValue?.compactMap(\.intValue) ?? [128, 128]
            guard block.count == 2, block[0] > 0, block[1] > 0 else {
                throw .invalidConfig(field: "quantization_config.weight_block_size", reason: "must be two positive integers")
            }
            if let fmt = config["fmt"]?.stringValue, fmt != "e4m3" {
                throw .invalidConfig(field: "quantization_config.fmt", reason: "\"\(fmt)\" is not supported (only e4m3)")
            }
            return .fp8Block(blockRows: block[0], blockColumns: block[1])
        case "compressed-tensors":
            return .compressedTensors(try CompressedTensorsConfig(config))
        case "mxfp4":
            return .mxfp4
        default:
            throw .invalidConfig(
                field: "quantization_config.quant_method", reason: "\"\(method)\" is not supported (fp8, compressed-tensors, mxfp4)")
        }
    }

    /// One-line human description.
    public var summary: String {
        switch self {
        case .none: return "none"
        case .mxfp4: return "MXFP4 experts (E8M0 scales, 32-value blocks)"
        case let .fp8Block(r, c): return "FP8 E4M3, \(r)×\(c) block scales"
        case let .compressedTensors(ct):
            return ct.groups.map { g in
                "INT\(g.bits) \(g.symmetric ? "symmetric" : "asymmetric") \(g.strategy)" + (g.groupSize.map { " g\($0)" } ?? "")
            }.joined(separator: "; ") + " (compressed-tensors \(ct.format))"
        }
    }
}

/// The parts of a compressed-tensors `quantization_config` a decoder needs.
public struct CompressedTensorsConfig: Sendable, Equatable {
    /// One `config_groups` entry's weight arguments.
    public struct Group: Sendable, Equatable {
        public let name: String
        public let targets: [String]
        public let bits: Int
        public let symmetric: Bool
        public let groupSize: Int?
        public let strategy: String
        public let format: String
    }

    public let format: String
    public let groups: [Group]
    public let ignore: [String]

    public init(_ config: JSONValue) throws(FormatError) {
        format = config["format"]?.stringValue ?? "pack-quantized"
        ignore = config["ignore"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard let groupObject = config["config_groups"]?.objectValue, !groupObject.isEmpty else {
            throw .invalidConfig(field: "quantization_config.config_groups", reason: "missing or empty")
        }
        var groups: [Group] = []
        for (name, scheme) in groupObject.pairs {
            let field = "quantization_config.config_groups.\(name)"
            guard let weights = scheme["weights"], !weights.isNull else { continue }
            guard let bits = weights["num_bits"]?.intValue, (1...8).contains(bits) else {
                throw .invalidConfig(field: field + ".weights.num_bits", reason: "must be an integer 1…8")
            }
            let type = weights["type"]?.stringValue ?? "int"
            guard type == "int" else { throw .invalidConfig(field: field + ".weights.type", reason: "\"\(type)\" is not supported (int)") }
            let groupSize = weights["group_size"]?.intValue
            let strategy = weights["strategy"]?.stringValue ?? (groupSize.map { $0 > 0 ? "group" : "channel" } ?? "tensor")
            guard ["group", "channel"].contains(strategy) else {
                throw .invalidConfig(field: field + ".weights.strategy", reason: "\"\(strategy)\" is not supported (group, channel)")
            }
            if strategy == "group" {
                guard let g = groupSize, g > 0 else {
                    throw .invalidConfig(field: field + ".weights.group_size", reason: "group strategy needs a positive group_size")
                }
            }
            if let actorder = weights["actorder"]?.stringValue, actorder == "group" {
                throw .invalidConfig(field: field + ".weights.actorder", reason: "\"group\" (g_idx) is not supported")
            }
            groups.append(
                Group(
                    name: name, targets: scheme["targets"]?.arrayValue?.compactMap(\.stringValue) ?? ["Linear"],
                    bits: bits, symmetric: weights["symmetric"]?.boolValue ?? true,
                    groupSize: strategy == "group" ? groupSize : nil, strategy: strategy,
                    format: scheme["format"]?.stringValue ?? format))
        }
        guard !groups.isEmpty else {
            throw .invalidConfig(field: "quantization_config.config_groups", reason: "no group quantizes weights")
        }
        guard format == "pack-quantized" || groups.allSatisfy({ $0.format == "pack-quantized" }) else {
            throw .invalidConfig(field: "quantization_config.format", reason: "\"\(format)\" is not supported (pack-quantized)")
        }
        self.groups = groups
    }

    /// True when `module` (e.g. `model.layers.3.mlp.experts.7.down_proj`) is on the ignore list:
    /// plain entries match the whole name, `re:` entries are regexes matched from the start (Python `re.match`).
    public func isIgnored(_ module: String) -> Bool {
        ignore.contains { CompressedTensorsConfig.matches(entry: $0, module) }
    }

    /// The group quantizing `module`: a group whose targets name or match it, else one targeting `Linear`.
    public func group(for module: String) -> Group? {
        if isIgnored(module) { return nil }
        if let exact = groups.first(where: { g in
            g.targets.contains { $0 != "Linear" && CompressedTensorsConfig.matches(entry: $0, module) }
        }) {
            return exact
        }
        return groups.first { $0.targets.contains("Linear") }
    }

    static func matches(entry: String, _ module: String) -> Bool {
        guard entry.hasPrefix("re:") else { return entry == module }
        guard let regex = regexCache.regex(String(entry.dropFirst(3))) else { return false }
        let range = NSRange(module.startIndex..., in: module)
        return regex.firstMatch(in: module, options: [.anchored], range: range) != nil
    }
}

/// Compiled `re:` patterns, shared: a checkpoint asks about each of its hundreds of thousands of modules, and compiling
/// the same few patterns for each cost seconds on a 1 T model.
final class RegexCache: @unchecked Sendable {
    private let lock = NSLock()
    private var compiled: [String: NSRegularExpression?] = [:]

    func regex(_ pattern: String) -> NSRegularExpression? {
        lock.lock()
        defer { lock.unlock() }
        if let known = compiled[pattern] { return known }
        let made = try? NSRegularExpression(pattern: pattern)
        compiled[pattern] = made
        return made
    }
}

extension CompressedTensorsConfig {
    static let regexCache = RegexCache()
}
