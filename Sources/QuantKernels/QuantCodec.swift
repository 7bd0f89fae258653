// Quantize and dequantize whole rows of any `QuantType`: input checks, the reference row kernels, and rows
// spread over threads (rows are independent, so the bytes never depend on the thread count).
import CRowGEMM
import Dispatch

public enum QuantCodec {
    /// Quantizes `rows` rows of `width` floats (row-major) into `output` (`rows × rowBytes` bytes).
    /// `importance` (length `width`) is ggml's imatrix weighting; types whose ggml quantizer ignores it ignore it.
    /// Throws on a NaN/±Inf input (naming the first bad index), a width that is not a whole number of
    /// blocks, or mismatched buffer sizes. `threads` > 1 splits rows across threads.
    public static func quantize(
        _ type: QuantType, _ input: UnsafeBufferPointer<Float>, rows: Int, width: Int,
        importance: UnsafeBufferPointer<Float>? = nil, into output: UnsafeMutableRawBufferPointer,
        threads: Int = 1, reference: Bool = false
    ) throws(QuantError) {
        guard let rowBytes = type.rowBytes(width: width) else {
            throw .widthNotMultipleOfBlock(type: type, width: width, blockSize: type.blockSize)
        }
        guard input.count == rows * width else { throw .bufferSize(expected: rows * width, found: input.count) }
        guard output.count == rows * rowBytes else { throw .bufferSize(expected: rows * rowBytes, found: output.count) }
        if let importance {
            guard importance.count == width else { throw .importanceLength(expected: width, found: importance.count) }
            if let bad = importance.firstIndex(where: { !$0.isFinite }) { throw .nonFiniteImportance(index: bad) }
        }
        if importance == nil && type.layout.requiresImportance { throw .importanceRequired(type: type) }
        guard rows > 0, width > 0, let source = input.baseAddress, let destination = output.baseAddress else { return }
        let weights = type.layout.usesImportance ? importance?.baseAddress : nil

        let job = RowJob(
            type: type, source: source, width: width, weights: weights, destination: destination, rowBytes: rowBytes, reference: reference)
        let shares = RowPartition(rows: rows, threads: threads)
        // Each share stops at its first NaN or infinity; the smallest of those is the input's first.
        let firstBad = withUnsafeTemporaryAllocation(of: Int.self, capacity: shares.count) { found -> Int? in
            let slots = Slots(base: found.baseAddress!)
            if shares.count == 1 {
                slots.base[0] = job.run(0..<rows) ?? Int.max
            } else {
                DispatchQueue.concurrentPerform(iterations: shares.count) { slots.base[$0] = job.run(shares[$0]) ?? Int.max }
            }
            let first = (0..<shares.count).map { found[$0] }.min() ?? Int.max
            return first == Int.max ? nil : first
        }
        if let bad = firstBad { throw .nonFinite(index: bad, value: input[bad]) }
    }

    /// One result slot per thread share.
    private struct Slots: @unchecked Sendable { let base: UnsafeMutablePointer<Int> }

    /// The pointers one quantization call works on; each thread writes only its own rows' bytes.
    private struct RowJob: @unchecked Sendable {
        let type: QuantType
        let source: UnsafePointer<Float>
        let width: Int
        let weights: UnsafePointer<Float>?
        let destination: UnsafeMutableRawPointer
        let rowBytes: Int
        let reference: Bool

        /// Quantizes `rows` in order; stops at the first row holding a NaN or infinity and returns that element's index.
        func run(_ rows: Range<Int>) -> Int? {
            for row in rows {
                let x = source + row * width
                if let bad = FloatScan.firstNonFinite(x, count: width) {
                    return row * width + bad
                }
                quantizeRow(type, x, width, weights, destination + row * rowBytes, reference: reference)
            }
            return nil
        }
    }

    /// Array convenience: returns the quantized bytes.
    public static func quantize(
        _ type: QuantType, _ input: [Float], rows: Int, width: Int, importance: [Float]? = nil,
        threads: Int = 1, reference: Bool = false
    ) throws(QuantError) -> [UInt8] {
        guard let rowBytes = type.rowBytes(width: width) else {
            throw .widthNotMultipleOfBlock(type: type, width: width, blockSize: type.blockSize)
        }
        var output = [UInt8](repeating: 0, count: rows * rowBytes)
        let result: Result<Void, QuantError> = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBytes { destination in
                let run = { (weights: UnsafeBufferPointer<Float>?) -> Result<Void, QuantError> in
                    do throws(QuantError) {
                        try quantize(
                            type, source, rows: rows, width: width, importance: weights, into: destination, threads: threads,
                            reference: reference)
                        return .success(())
                    } catch { return .failure(error) }
                }
                if let importance { return importance.withUnsafeBufferPointer { run($0) } }
                return run(nil)
            }
        }
        try result.get()
        return output
    }

    /// Dequantizes `count` values (a whole number of blocks) from `input` into `output`.
    public static func dequantize(
        _ type: QuantType, _ input: UnsafeRawBufferPointer, count: Int,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws(QuantError) {
        guard let bytes = type.rowBytes(width: count) else {
            throw .widthNotMultipleOfBlock(type: type, width: count, blockSize: type.blockSize)
        }
        guard input.count >= bytes else { throw .bufferSize(expected: bytes, found: input.count) }
        guard output.count >= count else { throw .bufferSize(expected: count, found: output.count) }
        guard count > 0, let source = input.baseAddress, let y = output.baseAddress else { return }
        let blocks = count / type.blockSize, size = type.bytesPerBlock, n = type.blockSize
        switch type {
        case .f32: RowConversion.decode(.f32, from: source, count: count, into: y)
        case .f16: RowConversion.decode(.f16, from: source, count: count, into: y)
        case .bf16: RowConversion.decode(.bf16, from: source, count: count, into: y)
        case .q4_0: for b in 0..<blocks { LegacyQuants.dequantizeQ4_0(source + b * size, y + b * n) }
        case .q4_1: for b in 0..<blocks { LegacyQuants.dequantizeQ4_1(source + b * size, y + b * n) }
        case .q5_0: for b in 0..<blocks { LegacyQuants.dequantizeQ5_0(source + b * size, y + b * n) }
        case .q5_1: for b in 0..<blocks { LegacyQuants.dequantizeQ5_1(source + b * size, y + b * n) }
        case .q8_0: for b in 0..<blocks { LegacyQuants.dequantizeQ8_0(source + b * size, y + b * n) }
        case .q2_K: for b in 0..<blocks { KQuants236.dequantizeQ2_K(source + b * size, y + b * n) }
        case .q3_K: for b in 0..<blocks { KQuants236.dequantizeQ3_K(source + b * size, y + b * n) }
        case .q4_K:
            if moeq_dequantize_k(4, source, blocks, y) == 0 {
                for b in 0..<blocks { KQuants45.dequantize(source + b * size, y + b * n, fiveBit: false) }
            }
        case .q5_K: for b in 0..<blocks { KQuants45.dequantize(source + b * size, y + b * n, fiveBit: true) }
        case .q6_K:
            if moeq_dequantize_k(6, source, blocks, y) == 0 {
                for b in 0..<blocks { KQuants236.dequantizeQ6_K(source + b * size, y + b * n) }
            }
        case .iq4_nl: for b in 0..<blocks { IQuants4.dequantizeNL(source + b * size, y + b * n) }
        case .iq4_xs: for b in 0..<blocks { IQuants4.dequantizeXS(source + b * size, y + b * n) }
        case .iq2_xxs: for b in 0..<blocks { IQuantsLattice.dequantize(.iq2xxs, source + b * size, y + b * n) }
        case .iq2_xs: for b in 0..<blocks { IQuantsLattice.dequantize(.iq2xs, source + b * size, y + b * n) }
        case .iq2_s: for b in 0..<blocks { IQuantsLattice.dequantize(.iq2s, source + b * size, y + b * n) }
        case .iq3_xxs: for b in 0..<blocks { IQuantsLattice.dequantize(.iq3xxs, source + b * size, y + b * n) }
        case .iq3_s: for b in 0..<blocks { IQuantsLattice.dequantize(.iq3s, source + b * size, y + b * n) }
        case .iq1_s: for b in 0..<blocks { IQuants1.dequantizeS(source + b * size, y + b * n) }
        case .iq1_m: for b in 0..<blocks { IQuants1.dequantizeM(source + b * size, y + b * n) }
        case .mxfp4: for b in 0..<blocks { MXFP4.dequantize(source + b * size, y + b * n) }
        }
    }

    /// Array convenience.
    public static func dequantize(_ type: QuantType, _ input: [UInt8], count: Int) throws(QuantError) -> [Float] {
        var output = [Float](repeating: 0, count: count)
        let result: Result<Void, QuantError> = input.withUnsafeBytes { source in
            output.withUnsafeMutableBufferPointer { destination in
                do throws(QuantError) { try dequantize(type, source, count: count, into: destination); return .success(()) } catch {
                    return .failure(error)
                }
            }
        }
        try result.get()
        return output
    }

    /// One row through its type's kernel: the lane-parallel fast path, or with `reference` the plain scalar port
    /// of ggml (the fast path is tested byte for byte against it).
    static func quantizeRow(
        _ type: QuantType, _ x: UnsafePointer<Float>, _ width: Int, _ importance: UnsafePointer<Float>?,
        _ out: UnsafeMutableRawPointer, reference: Bool = false
    ) {
        switch type {
        case .f32: for i in 0..<width { out.storeBytes(of: x[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .f16:
            if reference {
                for i in 0..<width { out.storeBytes(of: GGMLRounding.half(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            } else {
                RowEncoding.f16(x, count: width, into: out)
            }
        case .bf16:
            if reference {
                for i in 0..<width { out.storeBytes(of: BFloat16.fromFloat(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            } else {
                RowEncoding.bf16(x, count: width, into: out)
            }
        case .q4_0:
            if let importance {
                LegacyQuants.quantizeQ4_0(x, width, importance: importance, out, lanes: !reference)
            } else {
                reference ? LegacyQuants.quantizeQ4_0(x, width, out) : LegacyQuantsSIMD.quantizeQ4_0(x, width, out)
            }
        case .q4_1:
            if let importance {
                LegacyQuants.quantizeQ4_1(x, width, importance: importance, out, lanes: !reference)
            } else {
                reference ? LegacyQuants.quantizeQ4_1(x, width, out) : LegacyQuantsSIMD.quantizeQ4_1(x, width, out)
            }
        case .q5_0:
            if let importance {
                LegacyQuants.quantizeQ5_0(x, width, importance: importance, out, lanes: !reference)
            } else {
                reference ? LegacyQuants.quantizeQ5_0(x, width, out) : LegacyQuantsSIMD.quantizeQ5_0(x, width, out)
            }
        case .q5_1:
            if let importance {
                LegacyQuants.quantizeQ5_1(x, width, importance: importance, out, lanes: !reference)
            } else {
                reference ? LegacyQuants.quantizeQ5_1(x, width, out) : LegacyQuantsSIMD.quantizeQ5_1(x, width, out)
            }
        case .q8_0: reference ? LegacyQuants.quantizeQ8_0(x, width, out) : LegacyQuantsSIMD.quantizeQ8_0(x, width, out)
        case .q2_K: KQuants236.quantizeQ2_K(x, width, importance: importance, out, lanes: !reference)
        case .q3_K: KQuants236.quantizeQ3_K(x, width, importance: importance, out, lanes: !reference)
        case .q4_K: KQuants45.quantize(x, width, importance: importance, out, fiveBit: false, lanes: !reference)
        case .q5_K: KQuants45.quantize(x, width, importance: importance, out, fiveBit: true, lanes: !reference)
        case .q6_K: KQuants236.quantizeQ6_K(x, width, importance: importance, out, lanes: !reference)
        case .iq4_nl: IQuants4.quantize(x, width, importance: importance, out, xs: false)
        case .iq4_xs: IQuants4.quantize(x, width, importance: importance, out, xs: true)
        case .iq2_xxs: IQuantsLattice.quantize(.iq2xxs, x, width, importance: importance, out)
        case .iq2_xs: IQuantsLattice.quantize(.iq2xs, x, width, importance: importance, out)
        case .iq2_s: IQuantsLattice.quantize(.iq2s, x, width, importance: importance, out)
        case .iq3_xxs: IQuantsLattice.quantize(.iq3xxs, x, width, importance: importance, out)
        case .iq3_s: IQuantsLattice.quantize(.iq3s, x, width, importance: importance, out)
        case .iq1_s: IQuants1.quantizeS(x, width, importance: importance!, out)
        case .iq1_m: IQuants1.quantizeM(x, width, importance: importance, out)
        case .mxfp4: MXFP4.quantize(x, width, out, reference: reference)
        }
    }
}
