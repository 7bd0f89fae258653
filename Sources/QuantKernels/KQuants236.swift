// Q2_K, Q3_K and Q6_K: 256-value super-blocks of 16 sub-blocks. Reference and importance-weighted
// quantizers and dequantizers, byte-identical with ggml.
//   Q2_K: scales[16] (4-bit scale | 4-bit min), qs[64], d, dmin       — 84 bytes
//   Q3_K: hmask[32], qs[64], scales[12] (6-bit, packed), d            — 110 bytes
//   Q6_K: ql[128], qh[64], scales[16] (int8), d                       — 210 bytes

enum KQuants236 {
    // MARK: - Q2_K

    /// `lanes` runs the 16 sub-block searches eight at a time in SIMD lanes (same bytes; scalar is the reference).
    static func quantizeQ2_K(
        _ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer,
        lanes: Bool = true
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 * 4) { floats in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 16 + 32) { bytes in
                let weights = floats.baseAddress!, scales = weights + 16, mins = scales + 16, sw = mins + 16
                let codes = bytes.baseAddress!, scratch = codes + 256, ls = scratch + 16, lm = ls + 16
                for block in 0..<(width / 256) {
                    let xb = x + 256 * block, y = out + 84 * block
                    var sigma2: Float = 0
                    if importance != nil {
                        var sumX2: Float = 0
                        for j in 0..<256 { sumX2 += xb[j] * xb[j] }
                        sigma2 = sumX2 / 256
                    }
                    /// ggml's search of sub-block j: make_qkx3 on the imatrix weights, else make_qkx2 (MAD) on |x|.
                    func searchScalar(_ j: Int) {
                        if let importance {
                            let qw = importance + 256 * block + 16 * j
                            for l in 0..<16 { weights[l] = qw[l] * (sigma2 + xb[16 * j + l] * xb[16 * j + l]).squareRoot() }
                            sw[j] = 0
                            for l in 0..<16 { sw[j] += weights[l] }
                            scales[j] = ScaleSearch.asymmetric(
                                16, 3, xb + 16 * j, weights: weights, codes + 16 * j, theMin: &mins[j],
                                scratch: scratch, grid: .importance, useMAD: false, qkx3: true)
                        } else {
                            for l in 0..<16 { weights[l] = abs(xb[16 * j + l]) }
                            scales[j] = ScaleSearch.asymmetric(
                                16, 3, xb + 16 * j, weights: weights, codes + 16 * j, theMin: &mins[j],
                                scratch: scratch, grid: .q2K, useMAD: true, qkx3: false)
                        }
                    }
                    if lanes {
                        Q2Lanes.search(
                            xb, importance.map { $0 + 256 * block }, sigma2: sigma2, scales: scales, mins: mins, sw: sw, codes: codes,
                            redo: searchScalar)
                    } else {
                        for j in 0..<16 { searchScalar(j) }
                    }
                    if importance != nil {
                        let dm = ScaleSearch.positive(16, 15, scales, ls, weights: sw)
                        let mm = ScaleSearch.positive(16, 15, mins, lm, weights: sw)
                        y.storeHalf(GGMLRounding.half(dm), at: 80)
                        y.storeHalf(GGMLRounding.half(mm), at: 82)
                        for j in 0..<16 { y.storeByte(ls[j] | (lm[j] << 4), at: j) }
                    } else {
                        var maxScale: Float = 0, maxMin: Float = 0
                        for j in 0..<16 {
                            if scales[j] > maxScale { maxScale = scales[j] }
                            if mins[j] > maxMin { maxMin = mins[j] }
                        }
                        if maxScale > 0 {
                            let iscale = 15 / maxScale
                            for j in 0..<16 { y.storeByte(UInt8(truncatingIfNeeded: GGMLRounding.nearestInt(iscale * scales[j])), at: j) }
                            y.storeHalf(GGMLRounding.half(maxScale / 15), at: 80)
                        } else {
                            for j in 0..<16 { y.storeByte(0, at: j) }
                            y.storeHalf(GGMLRounding.half(0), at: 80)
                        }
                        if maxMin > 0 {
                            let iscale = 15 / maxMin
                            for j in 0..<16 {
                                let l = UInt8(truncatingIfNeeded: GGMLRounding.nearestInt(iscale * mins[j]))
                                y.storeByte(y.load(fromByteOffset: j, as: UInt8.self) | (l << 4), at: j)
                            }
                            y.storeHalf(GGMLRounding.half(maxMin / 15), at: 82)
                        } else {
                            y.storeHalf(GGMLRounding.half(0), at: 82)
                        }
                    }
                    let superScale = GGMLRounding.float(UnsafeRawPointer(y).loadHalf(at: 80))
                    let superMin = GGMLRounding.float(UnsafeRawPointer(y).loadHalf(at: 82))
                    for j in 0..<16 {
                        let packed = y.load(fromByteOffset: j, as: UInt8.self)
                        let d = superScale * Float(packed & 0x0F)
                        if d == 0 { continue }
                        let dm = superMin * Float(packed >> 4)
                        for i in 0..<16 {
                            let l = GGMLRounding.nearestInt((xb[16 * j + i] + dm) / d)
                            codes[16 * j + i] = UInt8(truncatingIfNeeded: Swift.max(0, Swift.min(3, l)))
                        }
                    }
                    packTwoBit(codes, into: y + 16)
                }
            }
        }
    }

    static func dequantizeQ2_K(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 80)), min = GGMLRounding.float(block.loadHalf(at: 82))
        var output = 0, scaleIndex = 0
        for half in 0..<2 {
            let q = block + 16 + 32 * half
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let sc = block.loadByte(at: scaleIndex); scaleIndex += 1
                    let dl = d * Float(sc & 0x0F), ml = min * Float(sc >> 4)
                    for l in 0..<16 { y[output] = dl * Float((q.loadByte(at: 16 * part + l) >> shift) & 3) - ml; output += 1 }
                }
            }
        }
    }

    /// Codes 0…3 of 256 values into 64 bytes: byte 32·h + l holds values 128h + l, +32, +64, +96.
    private static func packTwoBit(_ codes: UnsafeMutablePointer<UInt8>, into qs: UnsafeMutableRawPointer) {
        for j in stride(from: 0, to: 256, by: 128) {
            for l in 0..<32 {
                qs.storeByte(codes[j + l] | (codes[j + l + 32] << 2) | (codes[j + l + 64] << 4) | (codes[j + l + 96] << 6), at: j / 4 + l)
            }
        }
    }

    // MARK: - Q3_K

    /// `lanes` runs the 16 sub-block searches eight at a time in SIMD lanes (same bytes; scalar is the reference).
    static func quantizeQ3_K(
        _ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer,
        lanes: Bool = true
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 * 3) { floats in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256 + 16) { bytes in
                let weights = floats.baseAddress!, scales = weights + 16, sw = scales + 16
                let codes = bytes.baseAddress!, ls = codes + 256
                for block in 0..<(width / 256) {
                    let xb = x + 256 * block, y = out + 110 * block
                    let scaleBytes = y + 96
                    for i in 0..<12 { scaleBytes.storeByte(0, at: i) }
                    var sigma2: Float = 0
                    if importance != nil {
                        var sumX2: Float = 0
                        for j in 0..<256 { sumX2 += xb[j] * xb[j] }
                        sigma2 = 2 * sumX2 / 256
                    }
                    /// ggml's search of sub-block j: make_qx_quants on the imatrix weights, else make_q3_quants.
                    func searchScalar(_ j: Int) {
                        guard let importance else {
                            scales[j] = ScaleSearch.symmetricQ3(16, 4, xb + 16 * j, codes + 16 * j)
                            return
                        }
                        let qw = importance + 256 * block + 16 * j
                        for l in 0..<16 { weights[l] = qw[l] * (sigma2 + xb[16 * j + l] * xb[16 * j + l]).squareRoot() }
                        var sumW: Float = 0
                        for l in 0..<16 { sumW += weights[l] }
                        sw[j] = sumW
                        scales[j] = ScaleSearch.symmetric(16, 4, xb + 16 * j, codes + 16 * j, rmseType: 1, weights: weights)
                    }
                    if lanes {
                        Q3Lanes.search(
                            xb, importance.map { $0 + 256 * block }, sigma2: sigma2, scales: scales, sw: sw, codes: codes,
                            redo: searchScalar)
                    } else {
                        for j in 0..<16 { searchScalar(j) }
                    }
                    if importance != nil {
                        let dBlock = ScaleSearch.symmetric(16, 32, scales, ls, rmseType: 1, weights: sw)
                        for j in 0..<16 { packQ3Scale(j, Int32(ls[j]), scaleBytes) }
                        y.storeHalf(GGMLRounding.half(dBlock), at: 108)
                    } else {
                        var maxScale: Float = 0, amax: Float = 0
                        for j in 0..<16 {
                            let scale = abs(scales[j])
                            if scale > amax { amax = scale; maxScale = scales[j] }
                        }
                        if maxScale != 0 {
                            let iscale = -32 / maxScale
                            for j in 0..<16 {
                                var l = Int8(truncatingIfNeeded: GGMLRounding.nearestInt(iscale * scales[j]))
                                l = Swift.max(-32, Swift.min(31, l)) + 32
                                packQ3Scale(j, Int32(l), scaleBytes)
                            }
                            y.storeHalf(GGMLRounding.half(1 / iscale), at: 108)
                        } else {
                            y.storeHalf(GGMLRounding.half(0), at: 108)
                        }
                    }
                    let superScale = GGMLRounding.float(UnsafeRawPointer(y).loadHalf(at: 108))
                    for j in 0..<16 {
                        let d = superScale * Float(q3Scale(j, UnsafeRawPointer(scaleBytes)))
                        if d == 0 { continue }
                        for i in 0..<16 {
                            let l = GGMLRounding.nearestInt(xb[16 * j + i] / d)
                            codes[16 * j + i] = Int8(truncatingIfNeeded: Swift.max(-4, Swift.min(3, l)) + 4)
                        }
                    }
                    // High bits: value j's bit 2 goes to hmask[j % 32], bit j / 32 (branch-free: the bits are random).
                    for i in 0..<32 {
                        var mask: UInt8 = 0
                        for k in 0..<8 {
                            let high = codes[32 * k + i] > 3
                            mask |= (high ? 1 : 0) << UInt8(k)
                            codes[32 * k + i] -= high ? 4 : 0
                        }
                        y.storeByte(mask, at: i)
                    }
                    codes.withMemoryRebound(to: UInt8.self, capacity: 256) { packTwoBit($0, into: y + 32) }
                }
            }
        }
    }

    /// Packs 6-bit scale code `l` (0…63) of sub-block j: low 4 bits in bytes 0–7, top 2 bits in bytes 8–11.
    @inline(__always)
    private static func packQ3Scale(_ j: Int, _ code: Int32, _ q: UnsafeMutableRawPointer) {
        var l = code
        if j < 8 {
            q.storeByte(UInt8(truncatingIfNeeded: l & 0x0F), at: j)
        } else {
            q.storeByte(q.load(fromByteOffset: j - 8, as: UInt8.self) | UInt8(truncatingIfNeeded: (l & 0x0F) << 4), at: j - 8)
        }
        l >>= 4
        q.storeByte(q.load(fromByteOffset: j % 4 + 8, as: UInt8.self) | UInt8(truncatingIfNeeded: l << (2 * (j / 4))), at: j % 4 + 8)
    }

    /// The signed scale (code − 32) of sub-block j.
    @inline(__always)
    static func q3Scale(_ j: Int, _ q: UnsafeRawPointer) -> Int8 {
        let low = j < 8 ? q.loadByte(at: j) & 0x0F : q.loadByte(at: j - 8) >> 4
        let high = (q.loadByte(at: 8 + j % 4) >> (2 * (j / 4))) & 3
        return Int8(bitPattern: low | (high << 4)) &- 32
    }

    static func dequantizeQ3_K(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 108))
        let hmask = block, scales = block + 96
        var output = 0, scaleIndex = 0
        var m: UInt8 = 1
        for half in 0..<2 {
            let q = block + 32 + 32 * half
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let dl = d * Float(q3Scale(scaleIndex, scales)); scaleIndex += 1
                    for l in 0..<16 {
                        let low = Int8((q.loadByte(at: 16 * part + l) >> shift) & 3)
                        let value = low - (hmask.loadByte(at: 16 * part + l) & m != 0 ? 0 : 4)
                        y[output] = dl * Float(value); output += 1
                    }
                }
                m <<= 1
            }
        }
    }

    // MARK: - Q6_K

    /// `lanes` runs the 16 sub-block searches side by side in SIMD lanes (same bytes; scalar is the reference).
    static func quantizeQ6_K(
        _ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer,
        lanes: Bool = true
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { floats in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { bytes in
                let scales = floats.baseAddress!, codes = bytes.baseAddress!
                for block in 0..<(width / 256) {
                    let xb = x + 256 * block, y = out + 210 * block
                    var maxScale: Float = 0, maxAbsScale: Float = 0
                    if lanes {
                        Q6Lanes.search(xb, importance.map { $0 + 256 * block }, scales: scales, codes: codes)
                    } else {
                        for sub in 0..<16 {
                            let weights = importance.map { $0 + 256 * block + 16 * sub }
                            scales[sub] = ScaleSearch.symmetric(16, 32, xb + 16 * sub, codes + 16 * sub, rmseType: 1, weights: weights)
                        }
                    }
                    for sub in 0..<16 where abs(scales[sub]) > maxAbsScale { maxAbsScale = abs(scales[sub]); maxScale = scales[sub] }
                    if maxAbsScale < ScaleSearch.groupMaxEpsilon {
                        for i in 0..<210 { y.storeByte(0, at: i) }
                        continue
                    }
                    let iscale = -128 / maxScale
                    y.storeHalf(GGMLRounding.half(1 / iscale), at: 208)
                    for sub in 0..<16 {
                        let code = Swift.min(127, GGMLRounding.nearestInt(iscale * scales[sub]))
                        y.storeByte(UInt8(truncatingIfNeeded: code), at: 192 + sub)
                    }
                    let superScale = GGMLRounding.float(UnsafeRawPointer(y).loadHalf(at: 208))
                    for j in 0..<16 {
                        let d = superScale * Float(Int8(bitPattern: y.load(fromByteOffset: 192 + j, as: UInt8.self)))
                        if d == 0 { continue }
                        for i in 0..<16 {
                            let l = GGMLRounding.nearestInt(xb[16 * j + i] / d)
                            codes[16 * j + i] = Int8(truncatingIfNeeded: Swift.max(-32, Swift.min(31, l)) + 32)
                        }
                    }
                    let ql = y, qh = y + 128
                    for j in stride(from: 0, to: 256, by: 128) {
                        for l in 0..<32 {
                            let c0 = UInt8(bitPattern: codes[j + l]), c1 = UInt8(bitPattern: codes[j + l + 32])
                            let c2 = UInt8(bitPattern: codes[j + l + 64]), c3 = UInt8(bitPattern: codes[j + l + 96])
                            ql.storeByte((c0 & 0x0F) | ((c2 & 0x0F) << 4), at: j / 2 + l)
                            ql.storeByte((c1 & 0x0F) | ((c3 & 0x0F) << 4), at: j / 2 + l + 32)
                            qh.storeByte((c0 >> 4) | ((c1 >> 4) << 2) | ((c2 >> 4) << 4) | ((c3 >> 4) << 6), at: j / 4 + l)
                        }
                    }
                }
            }
        }
    }

    static func dequantizeQ6_K(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLRounding.float(block.loadHalf(at: 208))
        for half in 0..<2 {
            let ql = block + 64 * half, qh = block + 128 + 32 * half, sc = block + 192 + 8 * half
            let out = y + 128 * half
            for l in 0..<32 {
                let s = l / 16
                let h = qh.loadByte(at: l)
                let q1 = Int8(bitPattern: (ql.loadByte(at: l) & 0x0F) | ((h & 3) << 4)) - 32
                let q2 = Int8(bitPattern: (ql.loadByte(at: l + 32) & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int8(bitPattern: (ql.loadByte(at: l) >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int8(bitPattern: (ql.loadByte(at: l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[l] = d * Float(Int8(bitPattern: sc.loadByte(at: s))) * Float(q1)
                out[l + 32] = d * Float(Int8(bitPattern: sc.loadByte(at: s + 2))) * Float(q2)
                out[l + 64] = d * Float(Int8(bitPattern: sc.loadByte(at: s + 4))) * Float(q3)
                out[l + 96] = d * Float(Int8(bitPattern: sc.loadByte(at: s + 6))) * Float(q4)
            }
        }
    }
}
