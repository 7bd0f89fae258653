// Q4_K and Q5_K: 256-value super-blocks of 8 sub-blocks with 6-bit scales and mins. Reference and
// importance-weighted quantizers and dequantizers, byte-identical with ggml.
//   Q4_K: d, dmin (f16), scales[12], qs[128]                 — 144 bytes
//   Q5_K: d, dmin (f16), scales[12], qh[32], qs[128]         — 176 bytes

enum KQuants45 {
    /// The 6-bit scale and min of sub-block j from the 12 packed bytes (`get_scale_min_k4`).
    @inline(__always)
    static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        if j < 4 { return (q.loadByte(at: j) & 63, q.loadByte(at: j + 4) & 63) }
        let d = (q.loadByte(at: j + 4) & 0x0F) | ((q.loadByte(at: j - 4) >> 6) << 4)
        let m = (q.loadByte(at: j + 4) >> 4) | ((q.loadByte(at: j) >> 6) << 4)
        return (d, m)
    }

    @inline(__always)
    static func packScaleMin(_ j: Int, _ ls: UInt8, _ lm: UInt8, _ q: UnsafeMutableRawPointer) {
        if j < 4 {
            q.storeByte(ls, at: j)
            q.storeByte(lm, at: j + 4)
        } else {
            q.storeByte((ls & 0x0F) | ((lm & 0x0F) << 4), at: j + 4)
            q.storeByte(q.load(fromByteOffset: j - 4, as: UInt8.self) | ((ls >> 4) << 6), at: j - 4)
            q.storeByte(q.load(fromByteOffset: j, as: UInt8.self) | ((lm >> 4) << 6), at: j)
        }
    }

    /// Quantizes one row. `fiveBit` selects Q5_K (nmax 31) over Q4_K (nmax 15). `lanes` runs the eight
    /// sub-block searches side by side in SIMD lanes (same bytes; the scalar loop is the reference).
    static func quantize(
        _ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>?,
        _ out: UnsafeMutableRawPointer, fiveBit: Bool, lanes: Bool = true
    ) {
        let nmax: Int32 = fiveBit ? 31 : 15
        let blockBytes = fiveBit ? 176 : 144
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32 + 8 * 3) { floats in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 32 + 16) { bytes in
                let weights = floats.baseAddress!, scales = weights + 32, mins = scales + 8, sw = mins + 8
                let codes = bytes.baseAddress!, scratch = codes + 256, ls = scratch + 32, lm = ls + 8
                for block in 0..<(width / 256) {
                    let xb = x + 256 * block, y = out + blockBytes * block
                    let scaleBytes = y + 4
                    for i in 0..<12 { scaleBytes.storeByte(0, at: i) }
                    if let importance {
                        var sumX2: Float = 0
                        for l in 0..<256 { sumX2 += xb[l] * xb[l] }
                        let sigma2 = 2 * sumX2 / 256
                        if lanes {
                            LaneStage.searchImportance(
                                xb, importance + 256 * block, sigma2: sigma2, nmax: nmax, scales: scales, mins: mins, sw: sw, codes: codes)
                        } else {
                            for j in 0..<8 {
                                let qw = importance + 256 * block + 32 * j
                                for l in 0..<32 { weights[l] = qw[l] * (sigma2 + xb[32 * j + l] * xb[32 * j + l]).squareRoot() }
                                var sumW: Float = 0
                                for l in 0..<32 { sumW += weights[l] }
                                sw[j] = sumW
                                scales[j] = ScaleSearch.asymmetric(
                                    32, nmax, xb + 32 * j, weights: weights, codes + 32 * j, theMin: &mins[j],
                                    scratch: scratch, grid: .importance, useMAD: false, qkx3: true)
                            }
                        }
                        let dBlock = ScaleSearch.positive(8, 63, scales, ls, weights: sw)
                        let mBlock = ScaleSearch.positive(8, 63, mins, lm, weights: sw)
                        for j in 0..<8 {
                            let s = fiveBit ? Swift.min(63, ls[j]) : ls[j], m = fiveBit ? Swift.min(63, lm[j]) : lm[j]
                            packScaleMin(j, s, m, scaleBytes)
                        }
                        y.storeHalf(GGMLRounding.half(dBlock), at: 0)
                        y.storeHalf(GGMLRounding.half(mBlock), at: 2)
                    } else {
                        var maxScale: Float = 0, maxMin: Float = 0
                        if lanes {
                            LaneStage.searchReference(xb, nmax: nmax, grid: fiveBit ? .q5K : .q4K, scales: scales, mins: mins, codes: codes)
                        } else {
                            for j in 0..<8 {
                                var sumX2: Float = 0
                                for l in 0..<32 { sumX2 += xb[32 * j + l] * xb[32 * j + l] }
                                let averageX = (sumX2 / 32).squareRoot()
                                for l in 0..<32 { weights[l] = averageX + abs(xb[32 * j + l]) }
                                scales[j] = ScaleSearch.asymmetric(
                                    32, nmax, xb + 32 * j, weights: weights, codes + 32 * j, theMin: &mins[j],
                                    scratch: scratch, grid: fiveBit ? .q5K : .q4K, useMAD: false, qkx3: false)
                            }
                        }
                        for j in 0..<8 {
                            if scales[j] > maxScale { maxScale = scales[j] }
                            if mins[j] > maxMin { maxMin = mins[j] }
                        }
                        let inverseScale: Float = maxScale > 0 ? 63 / maxScale : 0
                        let inverseMin: Float = maxMin > 0 ? 63 / maxMin : 0
                        for j in 0..<8 {
                            let s = Swift.min(63, UInt8(truncatingIfNeeded: GGMLRounding.nearestInt(inverseScale * scales[j])))
                            let m = Swift.min(63, UInt8(truncatingIfNeeded: GGMLRounding.nearestInt(inverseMin * mins[j])))
                            packScaleMin(j, s, m, scaleBytes)
                        }
                        y.storeHalf(GGMLRounding.half(maxScale / 63), at: 0)
                        y.storeHalf(GGMLRounding.half(maxMin / 63), at: 2)
                    }
                    // Re-quantize every value with the stored (F16-rounded) effective scales.
                    let superScale = GGMLRounding.float(UnsafeRawPointer(y).loadHalf(at: 0))
                    let superMin = GGMLRounding.float(UnsafeRawPointer(y).loadHalf(at: 2))
                    for j in 0..<8 {
                        let (sc, m) = scaleMin(j, UnsafeRawPointer(scaleBytes))
                        let d = superScale * Float(sc)
                        if d == 0 { continue }
                        let dm = superMin * Float(m)
                        for i in 0..<32 {
                            let l = GGMLRounding.nearestInt((xb[32 * j + i] + dm) / d)
                            codes[32 * j + i] = UInt8(truncatingIfNeeded: Swift.max(0, Swift.min(nmax, l)))
                        }
                    }
                    if fiveBit {
                        let qh = y + 16, ql = y + 48
                        for i in 0..<32 { qh.storeByte(0, at: i) }
                        var m1: UInt8 = 1, m2: UInt8 = 2
                        for n in stride(from: 0, to: 256, by: 64) {
                            for j in 0..<32 {
                                var l1 = codes[n + j], l2 = codes[n + j + 32]
                                if l1 > 15 { l1 -= 16; qh.storeByte(qh.load(fromByteOffset: j, as: UInt8.self) | m1, at: j) }
                                if l2 > 15 { l2 -= 16; qh.storeByte(qh.load(fromByteOffset: j, as: UInt8.self) | m2, at: j) }
                                ql.storeByte(l1 | (l2 << 4), at: n / 2 + j)
                            }
                            m1 <<= 2; m2 <<= 2
                        }
                    } else {
                        let qs = y + 16
                        for n in stride(from: 0, to: 256, by: 64) {
                            for l in 0..<32 { qs.storeByte(codes[n + l] | (codes[n + l + 32] << 4), at: n / 2 + l) }
                        }
                    }
                }
            }
        }
    }

    static func dequantize(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, fiveBit: Bool) {
        let d = GGMLRounding.float(block.loadHalf(at: 0)), min = GGMLRounding.float(block.loadHalf(at: 2))
        let scales = block + 4
        let qs = block + (fiveBit ? 48 : 16), qh = block + 16
        var u1: UInt8 = 1, u2: UInt8 = 2
        for chunk in 0..<4 {
            let (sc1, m1) = scaleMin(2 * chunk, scales), (sc2, m2) = scaleMin(2 * chunk + 1, scales)
            let d1 = d * Float(sc1), min1 = min * Float(m1), d2 = d * Float(sc2), min2 = min * Float(m2)
            for l in 0..<32 {
                let q = qs.loadByte(at: 32 * chunk + l)
                var low = q & 0x0F, high = q >> 4
                if fiveBit {
                    let h = qh.loadByte(at: l)
                    if h & u1 != 0 { low += 16 }
                    if h & u2 != 0 { high += 16 }
                }
                y[64 * chunk + l] = d1 * Float(low) - min1
                y[64 * chunk + 32 + l] = d2 * Float(high) - min2
            }
            u1 <<= 2; u2 <<= 2
        }
    }
}

/// The lane-parallel search stage of Q4_K / Q5_K: transposes a super-block so lane j holds sub-block j.
enum LaneStage {
    static func transpose(_ source: UnsafePointer<Float>, into x: UnsafeMutablePointer<SIMD8<Float>>) {
        for i in 0..<32 {
            x[i] = SIMD8(
                source[i], source[32 + i], source[64 + i], source[96 + i], source[128 + i], source[160 + i], source[192 + i],
                source[224 + i])
        }
    }

    /// Copies the lanes' results out; flagged lanes are skipped (`redoUnsafe` fills them).
    static func store(
        _ lanes: UnsafePointer<SIMD8<Float>>, scale: SIMD8<Float>, theMin: SIMD8<Float>, unsafe: LaneSearch.Mask,
        scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>, codes: UnsafeMutablePointer<UInt8>
    ) {
        for j in 0..<8 where !unsafe[j] {
            scales[j] = scale[j]
            mins[j] = theMin[j]
            for i in 0..<32 { codes[32 * j + i] = UInt8(lanes[i][j]) }
        }
    }

    /// Reruns the flagged sub-blocks through the scalar port (flat, subnormal or otherwise out-of-range lanes).
    static func redoUnsafe(
        _ unsafe: LaneSearch.Mask, _ xb: UnsafePointer<Float>, weightsOf: (Int, UnsafeMutablePointer<Float>) -> Void,
        nmax: Int32, grid: SearchGrid, qkx3: Bool,
        scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>, codes: UnsafeMutablePointer<UInt8>
    ) {
        guard any(unsafe) else { return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { weights in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { scratch in
                for j in 0..<8 where unsafe[j] {
                    weightsOf(j, weights.baseAddress!)
                    scales[j] = ScaleSearch.asymmetric(
                        32, nmax, xb + 32 * j, weights: weights.baseAddress!, codes + 32 * j, theMin: &mins[j],
                        scratch: scratch.baseAddress!, grid: grid,
                        useMAD: false, qkx3: qkx3)
                }
            }
        }
    }

    /// No importance: weights = √(mean x² of the sub-block) + |x|, make_qkx2_quants.
    static func searchReference(
        _ xb: UnsafePointer<Float>, nmax: Int32, grid: SearchGrid,
        scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>, codes: UnsafeMutablePointer<UInt8>
    ) {
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 64) { floats in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 64) { codes8 in
                let x = floats.baseAddress!, w = x + 32, l = codes8.baseAddress!, scratch = l + 32
                transpose(xb, into: x)
                var sumX2 = SIMD8<Float>(repeating: 0)
                for i in 0..<32 { sumX2 += x[i] * x[i] }
                let average = (sumX2 / 32).squareRoot()
                for i in 0..<32 { w[i] = average + LaneSearch.magnitude(x[i]) }
                let result = LaneSearch.asymmetric(32, nmax, x, w, l, scratch: scratch, grid: grid, qkx3: false)
                store(l, scale: result.scale, theMin: result.theMin, unsafe: result.unsafe, scales: scales, mins: mins, codes: codes)
                redoUnsafe(
                    result.unsafe, xb,
                    weightsOf: { j, weights in
                        var sumX2: Float = 0
                        for i in 0..<32 { sumX2 += xb[32 * j + i] * xb[32 * j + i] }
                        let averageX = (sumX2 / 32).squareRoot()
                        for i in 0..<32 { weights[i] = averageX + abs(xb[32 * j + i]) }
                    }, nmax: nmax, grid: grid, qkx3: false, scales: scales, mins: mins, codes: codes)
            }
        }
    }

    /// With importance: weights = qw·√(σ² + x²), make_qkx3_quants on SearchGrid.importance; sw = Σ weights.
    static func searchImportance(
        _ xb: UnsafePointer<Float>, _ qw: UnsafePointer<Float>, sigma2: Float, nmax: Int32,
        scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>, sw: UnsafeMutablePointer<Float>,
        codes: UnsafeMutablePointer<UInt8>
    ) {
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 96) { floats in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 64) { codes8 in
                let x = floats.baseAddress!, w = x + 32, q = w + 32, l = codes8.baseAddress!, scratch = l + 32
                transpose(xb, into: x)
                transpose(qw, into: q)
                var sumW = SIMD8<Float>(repeating: 0)
                for i in 0..<32 {
                    w[i] = q[i] * (sigma2 + x[i] * x[i]).squareRoot()
                    sumW += w[i]
                }
                let result = LaneSearch.asymmetric(32, nmax, x, w, l, scratch: scratch, grid: .importance, qkx3: true)
                for j in 0..<8 { sw[j] = sumW[j] }
                store(l, scale: result.scale, theMin: result.theMin, unsafe: result.unsafe, scales: scales, mins: mins, codes: codes)
                redoUnsafe(
                    result.unsafe, xb,
                    weightsOf: { j, weights in
                        for i in 0..<32 { weights[i] = qw[32 * j + i] * (sigma2 + xb[32 * j + i] * xb[32 * j + i]).squareRoot() }
                    }, nmax: nmax, grid: .importance, qkx3: true, scales: scales, mins: mins, codes: codes)
            }
        }
    }
}
