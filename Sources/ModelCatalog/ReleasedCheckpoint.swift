// The size of a model's released safetensors checkpoint, from its config.json alone: every expected tensor at the
// storage its `quantization_config` gives it (FP8 blocks with F32 inverse scales, compressed-tensors packed integers
// with BF16 scales, MXFP4 blocks with E8M0 scales), the rest in the release's float type. What `plan` shows as the
// download beside each recipe.
import TensorFormats

public enum ReleasedCheckpoint {
    /// Tensor-data bytes of the checkpoint `spec` describes (safetensors headers, a few kB per shard, excluded).
    /// `floatBytes`: bytes per element of the tensors the quantization leaves alone (2 for BF16, 4 for F32).
    public static func bytes(spec: ModelSpec, floatBytes: Int = 2) -> Int {
        var total = 0
        // The experts of one layer and projection are stored alike: expert 0 stands for them (compressed-tensors
        // patterns are matched against its name).
        for (tensor, count) in spec.tensorLayout.expectedTensorGroups() {
            total += count * bytes(of: tensor, spec: spec, floatBytes: floatBytes)
        }
        return total
    }

    static func bytes(of tensor: ExpectedTensor, spec: ModelSpec, floatBytes: Int) -> Int {
        let elements = tensor.shape.reduce(1, *)
        if case .routerBias = tensor.role { return elements * 4 }  // DeepSeek's e_score_correction_bias ships as F32
        switch spec.quantization {
        case let .fp8Block(blockRows, blockColumns) where tensor.isLinear && tensor.shape.count == 2:
            let (rows, columns) = (tensor.shape[0], tensor.shape[1])
            return elements + (rows + blockRows - 1) / blockRows * ((columns + blockColumns - 1) / blockColumns) * 4
        case .compressedTensors(let config) where tensor.isLinear && tensor.shape.count == 2:
            let module = tensor.name.hasSuffix(".weight") ? String(tensor.name.dropLast(".weight".count)) : tensor.name
            return config.group(for: module).map { packedBytes(rows: tensor.shape[0], columns: tensor.shape[1], group: $0) }
                ?? elements * floatBytes
        case .mxfp4 where tensor.role.category == .routedExperts && tensor.part == .weight && elements % 32 == 0:
            return elements / 2 + elements / 32  // 4-bit values, one E8M0 scale byte per 32
        default:
            return elements * floatBytes
        }
    }

    /// compressed-tensors pack-quantized: values packed into I32 words per row, one BF16 scale per group (per row
    /// for channel strategy), an I32 zero point per group packed likewise when asymmetric, and the I64[2] shape.
    static func packedBytes(rows: Int, columns: Int, group: CompressedTensorsConfig.Group) -> Int {
        let perWord = 32 / group.bits
        let words = (columns + perWord - 1) / perWord
        let groups = group.groupSize.map { (columns + $0 - 1) / $0 } ?? 1
        var bytes = rows * words * 4 + rows * groups * 2 + 16
        if !group.symmetric { bytes += (rows + perWord - 1) / perWord * groups * 4 }
        return bytes
    }
}
