// How checkpoints store the pieces of one quantized weight beside it (formats.md §3–4 and §2.4): the piece's name
// is the logical weight's name plus a suffix — `….weight_scale_inv` (DeepSeek FP8), `….weight_packed` /
// `….weight_scale` / … (compressed-tensors), `…gate_up_proj_blocks` / `_scales` (gpt-oss MXFP4). Declared once.

/// A stored companion of a logical weight, by the suffix appended to the weight's name.
public enum CompanionSuffix: String, Sendable, CaseIterable {
    /// DeepSeek / Kimi FP8 block scale (F32, one per 128×128 block).
    case fp8ScaleInverse = "_scale_inv"
    /// compressed-tensors packed integers (int32 words).
    case packed = "_packed"
    case scale = "_scale"
    case zeroPoint = "_zero_point"
    case shape = "_shape"
    case groupIndex = "_g_idx"
    /// gpt-oss MXFP4 blocks and their E8M0 scales.
    case mxfp4Blocks = "_blocks"
    case mxfp4Scales = "_scales"

    /// The companions compressed-tensors stores beside a packed module.
    public static let compressedTensors: [CompanionSuffix] = [.packed, .scale, .shape, .zeroPoint, .groupIndex]

    /// The stored name of this companion of `logical`.
    public func name(of logical: String) -> String { logical + rawValue }

    /// The logical name when `stored` is this companion of it.
    public func logicalName(of stored: String) -> String? {
        stored.hasSuffix(rawValue) && stored.count > rawValue.count ? String(stored.dropLast(rawValue.count)) : nil
    }

    /// The companion `stored` is, and its logical name (longest suffix first: `_scale_inv` before `_scale`).
    public static func match(_ stored: String) -> (CompanionSuffix, logical: String)? {
        for suffix in matchOrder { if let logical = suffix.logicalName(of: stored) { return (suffix, logical) } }
        return nil
    }

    private static let matchOrder = allCases.sorted { $0.rawValue.count > $1.rawValue.count }
}
