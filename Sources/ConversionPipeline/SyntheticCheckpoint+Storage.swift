// How each tensor of a synthetic checkpoint is stored (plain, FP8 + block scale, packed INT4 + companions)
// and how its bytes are generated, 128 rows at a time, from a per-tensor seeded stream.
import ModelCatalog
import QuantKernels
import TensorFormats

/// Which piece of a logical weight a stored tensor holds.
enum StoredPart: Sendable {
    case plain(SafetensorsDType)
    case fp8Weight, fp8ScaleInverse
    case int4Packed, int4Scale, int4Shape
}

/// One stored tensor: its header spec, and the logical weight its bytes derive from.
struct StoredTensor: Sendable {
    let spec: TensorSpec
    let logicalName: String
    let logicalShape: [Int]
    let part: StoredPart
    let distribution: WeightDistribution

    static let rowBlock = 128

    var rows: Int { logicalShape.count <= 1 ? 1 : logicalShape[0] }
    var columns: Int { logicalShape.last ?? 1 }
    /// A few bytes that describe the weight rather than hold it (written even in sparse checkpoints).
    var isMetadata: Bool {
        if case .int4Shape = part { return true }
        return false
    }

    /// Generates this tensor's bytes and writes them block by block (peak memory: one 128-row block).
    func fill(_ writer: SafetensorsWriter, seed: UInt64) throws {
        if case .int4Shape = part {
            var bytes: [UInt8] = []
            for dim in logicalShape { withUnsafeBytes(of: Int64(dim).littleEndian) { bytes += $0 } }
            try writer.write(spec.name, bytes: bytes)
            return
        }
        var random = SplitMix64(seed: seed, name: logicalName)
        var block = [Float](repeating: 0, count: StoredTensor.rowBlock * columns)
        var start = 0
        while start < rows {
            let count = min(StoredTensor.rowBlock, rows - start)
            for i in 0..<(count * columns) { block[i] = distribution.sample(&random) }
            let bytes = encode(block: block, rows: count, startRow: start)
            let offset = byteOffset(forRow: start)
            try writer.write(spec.name, bytes: bytes, at: offset)
            start += count
        }
    }

    private func byteOffset(forRow row: Int) -> Int {
        switch part {
        case .plain(let dtype): return row * columns * dtype.bitsPerElement / 8
        case .fp8Weight: return row * columns
        case .fp8ScaleInverse: return (row / StoredTensor.rowBlock) * ((columns + 127) / 128) * 4
        case .int4Packed: return row * GroupwiseInteger.wordCount(columns, bits: 4) * 4
        case .int4Scale: return row * (columns / SyntheticCheckpoint.int4GroupSize) * 2
        case .int4Shape: return 0
        }
    }

    private func encode(block: [Float], rows count: Int, startRow: Int) -> [UInt8] {
        var out: [UInt8] = []
        func append<T>(_ value: T) { withUnsafeBytes(of: value) { out += $0 } }
        switch part {
        case .plain(.f32):
            out.reserveCapacity(count * columns * 4)
            for i in 0..<(count * columns) { append(block[i].bitPattern.littleEndian) }
        case .plain(_):
            out.reserveCapacity(count * columns * 2)
            for i in 0..<(count * columns) { append(BFloat16.fromFloat(block[i]).littleEndian) }
        case .fp8Weight, .fp8ScaleInverse:
            let scales = fp8Scales(block, rows: count)
            if case .fp8ScaleInverse = part {
                for s in scales { append(s.bitPattern.littleEndian) }
                return out
            }
            let scaleColumns = scales.count
            out.reserveCapacity(count * columns)
            for r in 0..<count {
                for c in 0..<columns { out.append(FloatE4M3.fromFloat(block[r * columns + c] / scales[c / 128])) }
            }
            _ = scaleColumns
        case .int4Packed, .int4Scale:
            // compressed-tensors' own arithmetic (BF16 scales), so the library would produce the same codes.
            let scheme = GroupwiseScheme(bits: 4, groupSize: SyntheticCheckpoint.int4GroupSize, symmetric: true)
            for r in 0..<count {
                let quantized = block.withUnsafeBufferPointer { all in
                    try? GroupwiseInteger.quantizeRow(
                        UnsafeBufferPointer(rebasing: all[(r * columns)..<((r + 1) * columns)]), scheme: scheme)
                }
                guard let quantized else { continue }
                if case .int4Scale = part {
                    for s in quantized.scales { append(BFloat16.fromFloat(s).littleEndian) }
                } else {
                    for w in GroupwiseInteger.pack(quantized.codes, bits: 4) { append(w.littleEndian) }
                }
            }
        case .int4Shape:
            break
        }
        return out
    }

    /// One scale per 128 columns for a block of ≤128 rows: amax / 448 (1 for an all-zero block).
    private func fp8Scales(_ block: [Float], rows count: Int) -> [Float] {
        let scaleColumns = (columns + 127) / 128
        var scales = [Float](repeating: 0, count: scaleColumns)
        for r in 0..<count {
            for c in 0..<columns { scales[c / 128] = max(scales[c / 128], abs(block[r * columns + c])) }
        }
        return scales.map { $0 == 0 ? 1 : $0 / FloatE4M3.maxFinite }
    }
}

/// The distribution synthetic values are drawn from.
enum WeightDistribution: Sendable {
    case normal(mean: Float, std: Float)

    func sample(_ random: inout SplitMix64) -> Float {
        switch self {
        case let .normal(mean, std): return mean + std * random.nextNormal()
        }
    }
}

/// Every stored tensor of a spec under a synthetic dtype.
struct StoragePlan {
    let tensors: [StoredTensor]

    init(spec: ModelSpec, dtype: SyntheticDType) {
        var tensors: [StoredTensor] = []
        let floatType: SafetensorsDType = dtype == .f32 ? .f32 : .bf16
        for expected in spec.expectedTensors() {
            let role = expected.role
            let distribution = StoragePlan.distribution(role: role, shape: expected.shape)
            func add(_ name: String, _ type: SafetensorsDType, _ shape: [Int], _ part: StoredPart) {
                tensors.append(
                    StoredTensor(
                        spec: TensorSpec(name: name, dtype: type, shape: shape), logicalName: expected.name,
                        logicalShape: expected.shape, part: part, distribution: distribution))
            }
            if case .routerBias = role {
                add(expected.name, .f32, expected.shape, .plain(.f32))
                continue
            }
            let isRoutedExpert: Bool
            if case .routedExpert = role { isRoutedExpert = true } else { isRoutedExpert = false }
            switch dtype {
            case .fp8 where expected.isLinear:
                let (rows, columns) = (expected.shape[0], expected.shape[1])
                add(expected.name, .f8e4m3, expected.shape, .fp8Weight)
                add(
                    CompanionSuffix.fp8ScaleInverse.name(of: expected.name), .f32, [(rows + 127) / 128, (columns + 127) / 128],
                    .fp8ScaleInverse)
            case .int4 where isRoutedExpert && expected.shape[1] % SyntheticCheckpoint.int4GroupSize == 0:
                let (rows, columns) = (expected.shape[0], expected.shape[1])
                add(
                    CompanionSuffix.packed.name(of: expected.name), .i32, [rows, GroupwiseInteger.wordCount(columns, bits: 4)], .int4Packed)
                add(CompanionSuffix.scale.name(of: expected.name), .bf16, [rows, columns / SyntheticCheckpoint.int4GroupSize], .int4Scale)
                add(CompanionSuffix.shape.name(of: expected.name), .i64, [2], .int4Shape)
            default:
                add(expected.name, floatType, expected.shape, .plain(floatType))
            }
        }
        self.tensors = tensors
    }

    /// Norms near 1, routers and biases with enough spread that routing varies by token, linears ~ 1/√in.
    static func distribution(role: TensorRole, shape: [Int]) -> WeightDistribution {
        let inputs = Float(max(shape.last ?? 1, 1))
        switch role {
        case .embedding: return .normal(mean: 0, std: 1)
        case .routerBias: return .normal(mean: 0, std: 0.5)
        case .router: return .normal(mean: 0, std: 2 / inputs.squareRoot())
        default:
            if shape.count == 1 { return .normal(mean: 1, std: 0.1) }
            return .normal(mean: 0, std: 1 / inputs.squareRoot())
        }
    }
}
