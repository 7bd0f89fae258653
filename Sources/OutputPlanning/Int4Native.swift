// INT4-NATIVE: routed experts stored as compressed-tensors INT4 (symmetric, group 32 — Kimi K2 Thinking /
// K2.5) go into GGUF without re-quantizing: a nibble repack into Q4_0 when every scale is F16-exact, else
// exact F32 (named in a warning). Other quantizable tensors take the recipe's Q8_0.
import ModelCatalog
import QuantKernels
import TensorFormats

public enum Int4Native {
    /// The packed INT4 g32 symmetric encoding of a source weight, if it has one.
    public static func packed(_ weight: SourceWeight) -> (packed: TensorLocation, scale: TensorLocation)? {
        guard case let .packedInteger(packed, scale, zeroPoint, bits, groupSize) = weight.encoding,
            zeroPoint == nil, bits == 4, groupSize == 32
        else { return nil }
        return (packed, scale)
    }

    /// Decoded scales of a packed weight.
    public static func scales(_ weight: SourceWeight, _ scale: TensorLocation) throws -> [Float] {
        let source = SourceWeight(name: scale.name, shape: scale.info.shape, encoding: .plain(scale))
        defer { source.releasePages() }  // the check walks every expert of the model: keep none of it mapped
        return try source.decodeAll()
    }

    /// Q4_0 for stacked expert tensors whose every expert is packed INT4 g32 with F16-exact scales; F32 (exact)
    /// when some scale is not; the recipe's type otherwise.
    /// With `readScales` false (dry runs, which must not read the model's tens of GB of scales) every all-packed
    /// tensor is planned as Q4_0, what the conversion writes unless some scale turns out not to be F16-exact.
    public static func types(
        plans: [GGUFTensorPlan], types: [QuantType], resolver: WeightResolver, readScales: Bool = true, warnings: inout [String]
    ) throws -> [QuantType] {
        var result = types
        var assumed = 0
        for (i, plan) in plans.enumerated() {
            guard case .stacked(let names) = plan.source else { continue }
            var carrier = Int4Carrier.q4_0
            var allPacked = true
            for name in names {
                let weight = try resolver.weight(named: name)
                guard let (_, scale) = packed(weight) else { allPacked = false; break }
                guard readScales else { continue }
                let values = try scales(weight, scale)
                if case .q4_0 = carrier {
                    carrier = values.withUnsafeBufferPointer { Repack.int4Carrier(scales: $0, groups: weight.columns / 32) }
                    if case let .f32(row, group, value) = carrier {
                        warnings.append(
                            """
                            \(plan.name): \(name) row \(row) group \(group) has scale \(value), which F16 cannot hold; written as \
                            exact F32 instead of Q4_0
                            """
                        )
                    }
                }
            }
            guard allPacked else { continue }
            if !readScales { assumed += 1 }
            if case .q4_0 = carrier { result[i] = .q4_0 } else { result[i] = .f32 }
        }
        if assumed > 0 {
            warnings.append(
                "INT4-NATIVE: scales not read (dry run): \(assumed) expert tensors planned as Q4_0, which the conversion writes when "
                    + "every scale is F16-exact (it checks each one and writes F32 where one is not)")
        }
        return result
    }
}
