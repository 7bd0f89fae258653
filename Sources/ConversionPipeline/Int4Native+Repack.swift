// INT4-NATIVE at run time: each expert's packed INT4 nibbles and scales repacked into Q4_0 blocks (the plan chose Q4_0
// only where every scale is F16-exact; OutputPlanning/Int4Native.swift).
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats

extension Int4Native {
    /// Writes each expert's rows as Q4_0 blocks repacked from the source nibbles.
    static func repack(
        _ tensor: GGUFTensorPlan, names: ExpertNames, resolver: WeightResolver, writer: TensorSink, hasher: ContentHasher,
        wrote: (Int) throws -> Void
    ) throws {
        let rows = tensor.dimensions[1], width = tensor.rowWidth
        let expertBytes = rows * (width / 32) * 18
        for (e, name) in names.enumerated() {
            let weight = try resolver.weight(named: name)
            guard let (packed, scale) = packed(weight) else {
                throw ConversionError.shape(tensor: tensor.name, reason: "\(name) is not INT4 g32")
            }
            let values = try scales(weight, scale)
            var output = [UInt8](repeating: 0, count: expertBytes)
            try values.withUnsafeBufferPointer { s in
                try output.withUnsafeMutableBytes { out in
                    guard let source = packed.data.baseAddress, let destination = out.baseAddress else { return }
                    try Repack.int4ToQ4_0(
                        packed: source, wordsPerRow: packed.info.shape[1], scales: s, rows: rows, width: width, into: destination)
                }
            }
            try output.withUnsafeBytes {
                try writer.write(tensor.name, bytes: $0, at: e * expertBytes)
                hasher.update($0)
            }
            weight.releasePages()
            try wrote(expertBytes)
        }
    }
}
