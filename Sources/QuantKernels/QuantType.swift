// The one table of quantization types: every byte count, bits-per-weight and GGML id in moeq derives from it
// (formats.md §5.2; ggml include/ggml.h and src/ggml-common.h).

/// A tensor storage type as ggml defines it.
public enum QuantType: String, Sendable, CaseIterable, Codable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    case q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1", q8_0 = "Q8_0"
    case q2_K = "Q2_K", q3_K = "Q3_K", q4_K = "Q4_K", q5_K = "Q5_K", q6_K = "Q6_K"
    case iq4_nl = "IQ4_NL", iq4_xs = "IQ4_XS"
    case iq3_xxs = "IQ3_XXS", iq3_s = "IQ3_S"
    case iq2_xxs = "IQ2_XXS", iq2_xs = "IQ2_XS", iq2_s = "IQ2_S"
    case iq1_s = "IQ1_S", iq1_m = "IQ1_M"
    case mxfp4 = "MXFP4"

    /// One row of the table.
    public struct Layout: Sendable, Equatable {
        /// `enum ggml_type` value written in GGUF tensor infos.
        public let ggmlTypeID: UInt32
        /// Values per block (1 for plain floats).
        public let blockSize: Int
        /// Bytes per block.
        public let bytesPerBlock: Int
        /// True when ggml refuses to quantize without an importance matrix (IQ2_XXS, IQ2_XS, IQ1_S).
        public let requiresImportance: Bool
        /// True when ggml's quantizer changes its output given an importance matrix.
        public let usesImportance: Bool
    }

    /// The table. Byte sizes are checked against each block's field formula in QuantTypeTests.
    public var layout: Layout {
        switch self {
        case .f32: Layout(ggmlTypeID: 0, blockSize: 1, bytesPerBlock: 4, requiresImportance: false, usesImportance: false)
        case .f16: Layout(ggmlTypeID: 1, blockSize: 1, bytesPerBlock: 2, requiresImportance: false, usesImportance: false)
        case .q4_0: Layout(ggmlTypeID: 2, blockSize: 32, bytesPerBlock: 18, requiresImportance: false, usesImportance: true)
        case .q4_1: Layout(ggmlTypeID: 3, blockSize: 32, bytesPerBlock: 20, requiresImportance: false, usesImportance: true)
        case .q5_0: Layout(ggmlTypeID: 6, blockSize: 32, bytesPerBlock: 22, requiresImportance: false, usesImportance: true)
        case .q5_1: Layout(ggmlTypeID: 7, blockSize: 32, bytesPerBlock: 24, requiresImportance: false, usesImportance: true)
        case .q8_0: Layout(ggmlTypeID: 8, blockSize: 32, bytesPerBlock: 34, requiresImportance: false, usesImportance: false)
        case .q2_K: Layout(ggmlTypeID: 10, blockSize: 256, bytesPerBlock: 84, requiresImportance: false, usesImportance: true)
        case .q3_K: Layout(ggmlTypeID: 11, blockSize: 256, bytesPerBlock: 110, requiresImportance: false, usesImportance: true)
        case .q4_K: Layout(ggmlTypeID: 12, blockSize: 256, bytesPerBlock: 144, requiresImportance: false, usesImportance: true)
        case .q5_K: Layout(ggmlTypeID: 13, blockSize: 256, bytesPerBlock: 176, requiresImportance: false, usesImportance: true)
        case .q6_K: Layout(ggmlTypeID: 14, blockSize: 256, bytesPerBlock: 210, requiresImportance: false, usesImportance: true)
        case .iq4_nl: Layout(ggmlTypeID: 20, blockSize: 32, bytesPerBlock: 18, requiresImportance: false, usesImportance: true)
        case .iq4_xs: Layout(ggmlTypeID: 23, blockSize: 256, bytesPerBlock: 136, requiresImportance: false, usesImportance: true)
        case .iq2_xxs: Layout(ggmlTypeID: 16, blockSize: 256, bytesPerBlock: 66, requiresImportance: true, usesImportance: true)
        case .iq2_xs: Layout(ggmlTypeID: 17, blockSize: 256, bytesPerBlock: 74, requiresImportance: true, usesImportance: true)
        case .iq3_xxs: Layout(ggmlTypeID: 18, blockSize: 256, bytesPerBlock: 98, requiresImportance: false, usesImportance: true)
        case .iq1_s: Layout(ggmlTypeID: 19, blockSize: 256, bytesPerBlock: 50, requiresImportance: true, usesImportance: true)
        case .iq3_s: Layout(ggmlTypeID: 21, blockSize: 256, bytesPerBlock: 110, requiresImportance: false, usesImportance: true)
        case .iq2_s: Layout(ggmlTypeID: 22, blockSize: 256, bytesPerBlock: 82, requiresImportance: false, usesImportance: true)
        case .iq1_m: Layout(ggmlTypeID: 29, blockSize: 256, bytesPerBlock: 56, requiresImportance: false, usesImportance: true)
        case .bf16: Layout(ggmlTypeID: 30, blockSize: 1, bytesPerBlock: 2, requiresImportance: false, usesImportance: false)
        case .mxfp4: Layout(ggmlTypeID: 39, blockSize: 32, bytesPerBlock: 17, requiresImportance: false, usesImportance: false)
        }
    }

    public var ggmlTypeID: UInt32 { layout.ggmlTypeID }
    public var blockSize: Int { layout.blockSize }
    public var bytesPerBlock: Int { layout.bytesPerBlock }
    /// Storage bits per weight: 8 × bytes / values per block (4.5 for Q4_K, 6.5625 for Q6_K).
    public var bitsPerWeight: Double { Double(8 * bytesPerBlock) / Double(blockSize) }

    /// Bytes of one row of `width` values, or nil when `width` is not a whole number of blocks or overflows.
    public func rowBytes(width: Int) -> Int? {
        guard width >= 0, width % blockSize == 0 else { return nil }
        let (bytes, overflow) = (width / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
        return overflow ? nil : bytes
    }

    /// The type with a GGML id, if moeq knows it.
    public init?(ggmlTypeID: UInt32) {
        guard let match = QuantType.allCases.first(where: { $0.ggmlTypeID == ggmlTypeID }) else { return nil }
        self = match
    }
}

/// Why a row could not be quantized.
public enum QuantError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A NaN or infinity at flat `index` of the input.
    case nonFinite(index: Int, value: Float)
    /// The row width is not a multiple of the type's block size (the recipe picks a fallback type).
    case widthNotMultipleOfBlock(type: QuantType, width: Int, blockSize: Int)
    case importanceLength(expected: Int, found: Int)
    case nonFiniteImportance(index: Int)
    case bufferSize(expected: Int, found: Int)
    /// ggml refuses to quantize this type without an importance matrix (IQ2_XXS, IQ2_XS, IQ1_S).
    case importanceRequired(type: QuantType)

    public var description: String {
        switch self {
        case let .nonFinite(index, value): "value \(value) at index \(index) is not finite"
        case let .widthNotMultipleOfBlock(type, width, block):
            "row width \(width) is not a multiple of \(type.rawValue)'s block size \(block)"
        case let .importanceLength(expected, found): "importance vector has \(found) values, the row width is \(expected)"
        case let .nonFiniteImportance(index): "importance value at index \(index) is not finite"
        case let .bufferSize(expected, found): "buffer holds \(found) bytes/values, \(expected) needed"
        case let .importanceRequired(type):
            "\(type.rawValue) needs an importance matrix (as in llama-quantize); make one with `moeq imatrix` and pass --imatrix"
        }
    }
}
