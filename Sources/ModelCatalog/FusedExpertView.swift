// Where one expert's projection sits inside a checkpoint tensor that fuses every expert of a layer (gpt-oss): which
// stored rows and columns make each row of the GGUF's stacked expert tensor (or each expert's bias row).

/// How expert e's `rows × columns` matrix (GGUF orientation: one row per output, `columns` inputs) is laid out in a
/// fused checkpoint tensor, viewed 2-D as its SourceWeight ([rows of all leading dims] × last dim).
public struct FusedExpertView: Sendable, Equatable {
    /// Rows (outputs) and columns (inputs) of one expert's matrix; a bias is one row of `columns` values.
    public let rows: Int, columns: Int
    /// Stored inputs-first, [E, in, out·stride] (transformers' parameters), rather than outputs-first,
    /// [E, out·stride, in] (the MXFP4 release's blocks).
    public let transposed: Bool
    /// gate_up interleaves gate and up outputs (stride 2; gate phase 0, up phase 1); down has stride 1.
    public let stride: Int, phase: Int
    /// A bias [E, out·stride]: expert e's row is stored row e, outputs every `stride` values from `phase`.
    public let isBias: Bool

    public init(rows: Int, columns: Int, transposed: Bool, stride: Int, phase: Int, isBias: Bool) {
        self.rows = rows
        self.columns = columns
        self.transposed = transposed
        self.stride = stride
        self.phase = phase
        self.isBias = isBias
    }

    /// Stored rows (of the 2-D view) holding expert `expert`'s values, and the stored row width.
    public func storedRows(expert: Int) -> (rows: Range<Int>, width: Int) {
        if isBias { return (expert..<(expert + 1), columns * stride) }
        if transposed { return ((expert * columns)..<((expert + 1) * columns), rows * stride) }
        return ((expert * rows * stride)..<((expert + 1) * rows * stride), columns)
    }

    /// Expert `expert`'s matrix rows `range` [range.count × columns] from its stored rows (`block`, as `storedRows`
    /// gives them, row-major).
    public func extract(_ block: UnsafeBufferPointer<Float>, rows range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        let width = storedRows(expert: 0).width
        for (k, r) in range.enumerated() {
            for c in 0..<columns {
                let value: Float
                if isBias {
                    value = block[c * stride + phase]
                } else if transposed {
                    value = block[c * width + r * stride + phase]
                } else {
                    value = block[(r * stride + phase) * width + c]
                }
                out[k * columns + c] = value
            }
        }
    }
}
