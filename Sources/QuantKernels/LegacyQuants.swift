// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: 32-value blocks. Reference quantizers (`quantize_row_*_ref`), the
// importance-weighted ones (`quantize_row_*_impl`) and dequantizers, byte-identical with ggml.

enum LegacyQuants {
    // MARK: Q4_0 — d (f16), qs[16]: value j in the low nibble of qs[j], value j+16 in the high nibble.

    static func quantizeQ4_0(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 18 * block
            var amax: Float = 0, max: Float = 0
            for j in 0..<32 where amax < abs(xb[j]) { amax = abs(xb[j]); max = xb[j] }
            let d = max / -8
            let id: Float = d != 0 ? 1 / d : 0
            y.storeHalf(GGMLRounding.half(d), at: 0)
            for j in 0..<16 {
                let x0 = xb[j] * id, x1 = xb[16 + j] * id
                let q0 = Swift.min(15, Int8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x0 + 8.5)))
                let q1 = Swift.min(15, Int8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x1 + 8.5)))
                y.storeByte(UInt8(bitPattern: q0) | UInt8(bitPattern: q1) << 4, at: 2 + j)
            }
        }
    }

    static func quantizeQ4_0(
        _ x: UnsafePointer<Float>, _ width: Int, importance qw: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, lanes: Bool = true
    ) {
        symmetricImportance(x, width, qw, out, nmax: 8, blockBytes: 18, lanes: lanes) { y, codes in
            for j in 0..<16 { y.storeByte(UInt8(bitPattern: codes[j]) | UInt8(bitPattern: codes[j + 16]) << 4, at: 2 + j) }
        }
    }

    static func dequantizeQ4_0(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0))
        for j in 0..<16 {
            let q = block.loadByte(at: 2 + j)
            y[j] = Float(Int32(q & 0x0F) - 8) * d
            y[j + 16] = Float(Int32(q >> 4) - 8) * d
        }
    }

    // MARK: Q4_1 — d, m (f16), qs[16]

    static func quantizeQ4_1(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 20 * block
            var min = Float.greatestFiniteMagnitude, max = -Float.greatestFiniteMagnitude
            for j in 0..<32 { if xb[j] < min { min = xb[j] }; if xb[j] > max { max = xb[j] } }
            let d = (max - min) / 15
            let id: Float = d != 0 ? 1 / d : 0
            y.storeHalf(GGMLRounding.half(d), at: 0)
            y.storeHalf(GGMLRounding.half(min), at: 2)
            for j in 0..<16 {
                let x0 = (xb[j] - min) * id, x1 = (xb[16 + j] - min) * id
                let q0 = Swift.min(15, Int8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x0 + 0.5)))
                let q1 = Swift.min(15, Int8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x1 + 0.5)))
                y.storeByte(UInt8(bitPattern: q0) | UInt8(bitPattern: q1) << 4, at: 4 + j)
            }
        }
    }

    static func quantizeQ4_1(
        _ x: UnsafePointer<Float>, _ width: Int, importance qw: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, lanes: Bool = true
    ) {
        asymmetricImportance(x, width, qw, out, nmax: 15, blockBytes: 20, lanes: lanes) { y, codes in
            for j in 0..<16 { y.storeByte(codes[j] | codes[j + 16] << 4, at: 4 + j) }
        }
    }

    static func dequantizeQ4_1(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0)), m = GGMLRounding.float(block.loadHalf(at: 2))
        for j in 0..<16 {
            let q = block.loadByte(at: 4 + j)
            y[j] = Float(q & 0x0F) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    // MARK: Q5_0 — d, qh (u32: 5th bits), qs[16]

    static func quantizeQ5_0(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 22 * block
            var amax: Float = 0, max: Float = 0
            for j in 0..<32 where amax < abs(xb[j]) { amax = abs(xb[j]); max = xb[j] }
            let d = max / -16
            let id: Float = d != 0 ? 1 / d : 0
            y.storeHalf(GGMLRounding.half(d), at: 0)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let x0 = xb[j] * id, x1 = xb[16 + j] * id
                let q0 = UInt8(bitPattern: Swift.min(31, Int8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x0 + 16.5))))
                let q1 = UInt8(bitPattern: Swift.min(31, Int8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x1 + 16.5))))
                y.storeByte((q0 & 0x0F) | (q1 & 0x0F) << 4, at: 6 + j)
                qh |= UInt32((q0 & 0x10) >> 4) << j
                qh |= UInt32((q1 & 0x10) >> 4) << (j + 16)
            }
            y.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
        }
    }

    static func quantizeQ5_0(
        _ x: UnsafePointer<Float>, _ width: Int, importance qw: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, lanes: Bool = true
    ) {
        symmetricImportance(x, width, qw, out, nmax: 16, blockBytes: 22, lanes: lanes) { y, codes in
            packFifthBits(codes: { UInt8(bitPattern: codes[$0]) }, y: y, qhOffset: 2, qsOffset: 6)
        }
    }

    static func dequantizeQ5_0(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0))
        let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for j in 0..<16 {
            let q = block.loadByte(at: 6 + j)
            let h0 = UInt8((qh >> j) << 4 & 0x10), h1 = UInt8((qh >> (j + 12)) & 0x10)
            y[j] = Float(Int32((q & 0x0F) | h0) - 16) * d
            y[j + 16] = Float(Int32((q >> 4) | h1) - 16) * d
        }
    }

    // MARK: Q5_1 — d, m, qh, qs[16]

    static func quantizeQ5_1(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 24 * block
            var min = Float.greatestFiniteMagnitude, max = -Float.greatestFiniteMagnitude
            for j in 0..<32 { if xb[j] < min { min = xb[j] }; if xb[j] > max { max = xb[j] } }
            let d = (max - min) / 31
            let id: Float = d != 0 ? 1 / d : 0
            y.storeHalf(GGMLRounding.half(d), at: 0)
            y.storeHalf(GGMLRounding.half(min), at: 2)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let x0 = (xb[j] - min) * id, x1 = (xb[16 + j] - min) * id
                let q0 = UInt8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x0 + 0.5))
                let q1 = UInt8(truncatingIfNeeded: GGMLRounding.truncatingInt32(x1 + 0.5))
                y.storeByte((q0 & 0x0F) | (q1 & 0x0F) << 4, at: 8 + j)
                qh |= UInt32((q0 & 0x10) >> 4) << j
                qh |= UInt32((q1 & 0x10) >> 4) << (j + 16)
            }
            y.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    static func quantizeQ5_1(
        _ x: UnsafePointer<Float>, _ width: Int, importance qw: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, lanes: Bool = true
    ) {
        asymmetricImportance(x, width, qw, out, nmax: 31, blockBytes: 24, lanes: lanes) { y, codes in
            packFifthBits(codes: { codes[$0] }, y: y, qhOffset: 4, qsOffset: 8)
        }
    }

    static func dequantizeQ5_1(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0)), m = GGMLRounding.float(block.loadHalf(at: 2))
        let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        for j in 0..<16 {
            let q = block.loadByte(at: 8 + j)
            let h0 = UInt8((qh >> j) << 4 & 0x10), h1 = UInt8((qh >> (j + 12)) & 0x10)
            y[j] = Float((q & 0x0F) | h0) * d + m
            y[j + 16] = Float((q >> 4) | h1) * d + m
        }
    }

    // MARK: Q8_0 — d, qs[32] int8 (the importance vector is ignored, as in ggml)

    static func quantizeQ8_0(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 34 * block
            var amax: Float = 0
            for j in 0..<32 { amax = Swift.max(amax, abs(xb[j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            y.storeHalf(GGMLRounding.half(d), at: 0)
            for j in 0..<32 {
                let q = (xb[j] * id).rounded(.toNearestOrAwayFromZero)  // C roundf: ties away from zero
                y.storeByte(UInt8(bitPattern: Int8(truncatingIfNeeded: GGMLRounding.truncatingInt32(q))), at: 2 + j)
            }
        }
    }

    static func dequantizeQ8_0(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 0))
        for j in 0..<32 { y[j] = Float(Int8(bitPattern: block.loadByte(at: 2 + j))) * d }
    }

    // MARK: Shared pieces

    /// σ² = mean of x² over the whole row (the legacy importance paths).
    static func rowSigma2(_ x: UnsafePointer<Float>, _ width: Int) -> Float {
        var sum: Float = 0
        for j in 0..<width { sum += x[j] * x[j] }
        return sum / Float(width)
    }

    /// Q4_0 / Q5_0 with importance: weights = qw·√(σ² + x²), make_qx_quants (rmse type 1), d stored as F16.
    private static func symmetricImportance(
        _ x: UnsafePointer<Float>, _ width: Int, _ qw: UnsafePointer<Float>,
        _ out: UnsafeMutableRawPointer, nmax: Int32, blockBytes: Int, lanes: Bool,
        pack: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int8>) -> Void
    ) {
        let sigma2 = rowSigma2(x, width)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { weight in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { codes in
                let blocks = width / 32, laneGroups = lanes ? blocks / 8 : 0
                // Eight blocks at a time in SIMD lanes (lane j = block j), the same f32 operations as the scalar search.
                for group in 0..<laneGroups {
                    LegacyLanes.symmetricImportance(
                        x + 256 * group, qw + 256 * group, sigma2: sigma2, nmax: nmax, codes: codes.baseAddress!
                    ) { j, d in
                        let y = out + blockBytes * (8 * group + j)
                        y.storeHalf(GGMLRounding.half(d), at: 0)
                        pack(y, codes.baseAddress! + 32 * j)
                    }
                }
                for block in (8 * laneGroups)..<blocks {
                    let xb = x + 32 * block, y = out + blockBytes * block
                    for j in 0..<32 { weight[j] = qw[32 * block + j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
                    let d = ScaleSearch.symmetric(
                        32, nmax, xb, codes.baseAddress!, rmseType: 1, weights: UnsafePointer(weight.baseAddress!))
                    y.storeHalf(GGMLRounding.half(d), at: 0)
                    pack(y, codes.baseAddress!)
                }
            }
        }
    }

    /// Q4_1 / Q5_1 with importance: weights = qw·√(σ² + x²), make_qkx3_quants, d and −min stored as F16.
    private static func asymmetricImportance(
        _ x: UnsafePointer<Float>, _ width: Int, _ qw: UnsafePointer<Float>,
        _ out: UnsafeMutableRawPointer, nmax: Int32, blockBytes: Int, lanes: Bool,
        pack: (UnsafeMutableRawPointer, UnsafeMutablePointer<UInt8>) -> Void
    ) {
        let sigma2 = rowSigma2(x, width)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { weight in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 32) { codes in
                let scratch = codes.baseAddress! + 256
                let blocks = width / 32, laneGroups = lanes ? blocks / 8 : 0
                // Eight blocks at a time as Q4_K's eight sub-blocks (the same make_qkx3 search on the same weights).
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 24) { results in
                    let scales = results.baseAddress!, mins = scales + 8, sw = mins + 8
                    for group in 0..<laneGroups {
                        LaneStage.searchImportance(
                            x + 256 * group, qw + 256 * group, sigma2: sigma2, nmax: nmax, scales: scales, mins: mins, sw: sw,
                            codes: codes.baseAddress!)
                        for j in 0..<8 {
                            let y = out + blockBytes * (8 * group + j)
                            y.storeHalf(GGMLRounding.half(scales[j]), at: 0)
                            y.storeHalf(GGMLRounding.half(-mins[j]), at: 2)
                            pack(y, codes.baseAddress! + 32 * j)
                        }
                    }
                }
                for block in (8 * laneGroups)..<blocks {
                    let xb = x + 32 * block, y = out + blockBytes * block
                    for j in 0..<32 { weight[j] = qw[32 * block + j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
                    var min: Float = 0
                    let d = ScaleSearch.asymmetric(
                        32, nmax, xb, weights: UnsafePointer(weight.baseAddress!), codes.baseAddress!, theMin: &min,
                        scratch: scratch, grid: .importance, useMAD: false, qkx3: true)
                    y.storeHalf(GGMLRounding.half(d), at: 0)
                    y.storeHalf(GGMLRounding.half(-min), at: 2)
                    pack(y, codes.baseAddress!)
                }
            }
        }
    }

    /// Low nibbles to qs (value j | value j+16 << 4), fifth bits to the u32 qh (bit j, bit j+16).
    private static func packFifthBits(codes: (Int) -> UInt8, y: UnsafeMutableRawPointer, qhOffset: Int, qsOffset: Int) {
        var qh: UInt32 = 0
        for j in 0..<16 {
            let q0 = codes(j), q1 = codes(j + 16)
            y.storeByte((q0 & 0x0F) | (q1 & 0x0F) << 4, at: qsOffset + j)
            qh |= UInt32((q0 & 0x10) >> 4) << j
            qh |= UInt32((q1 & 0x10) >> 4) << (j + 16)
        }
        y.storeBytes(of: qh.littleEndian, toByteOffset: qhOffset, as: UInt32.self)
    }
}
