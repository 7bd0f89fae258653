// IQ1_S and IQ1_M: groups of 8 ternary values (−1, 0, 1) shifted by ±1/8, stored as one of 2048 lattice points
// (IQuantGrid.iq1s), with a 3-bit scale per 32 (IQ1_S) or 16 (IQ1_M) values. The quantizers are ggml's
// `quantize_row_iq1_s_impl` and `quantize_row_iq1_m_impl` (ggml src/ggml-quants.c) with the same float operations in
// the same order: the values of a block sorted ascending (a stable sort, as glibc's qsort is on these sizes), every
// split into three groups scored exactly from prefix sums, then the groups mapped onto the lattice.

enum IQuants1 {
    static let delta: Float = 0.125
    /// The three shifted levels with the + and − shift (ggml `x_p`, `x_m`).
    static let plus = SIMD4<Float>(-1 + delta, delta, 1 + delta, 0)
    static let minus = SIMD4<Float>(-1 - delta, -delta, 1 - delta, 0)
    static let sBlockBytes = 50, mBlockBytes = 56

    @inline(__always)
    private static func level(_ shift: SIMD4<Float>, _ l: Int8) -> Float { shift[Int(l)] }

    /// Working memory for one row.
    private struct Scratch {
        let weight: UnsafeMutablePointer<Float>
        let order: UnsafeMutablePointer<Int>
        let sums: UnsafeMutablePointer<Float>
        let levels: UnsafeMutablePointer<Int8>
        let scales: UnsafeMutablePointer<Float>
        let shifts: UnsafeMutablePointer<Int8>
    }

    private static func withScratch(_ body: (Scratch) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32 + 4 * 33 + 16) { f in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 32) { order in
                withUnsafeTemporaryAllocation(of: Int8.self, capacity: 48) { b in
                    let base = f.baseAddress!
                    body(
                        Scratch(
                            weight: base, order: order.baseAddress!, sums: base + 32, levels: b.baseAddress!, scales: base + 32 + 4 * 33,
                            shifts: b.baseAddress! + 32))
                }
            }
        }
    }

    /// Indices 0..<n of `x` in ascending value order, equal values in index order (a stable insertion sort).
    @inline(__always)
    private static func sortedOrder(_ x: UnsafePointer<Float>, _ n: Int, _ order: UnsafeMutablePointer<Int>) {
        for i in 0..<n {
            var j = i
            while j > 0 && x[order[j - 1]] > x[i] {
                order[j] = order[j - 1]
                j -= 1
            }
            order[j] = i
        }
    }

    /// The listed neighbour (whole lattice if none scores) with the least Σ w·(scale·level − x)²; its levels into `levels`.
    @inline(__always)
    private static func nearest(
        _ offset: Int, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ scale: Float, _ shift: SIMD4<Float>,
        _ levels: UnsafeMutablePointer<Int8>
    ) -> Int {
        let grid = IQuantGrid.iq1s, pl = grid.pointLevels, list = grid.neighbours
        let count = Int(list[offset])
        var chunk = grid.chunkValues + Int(grid.chunkStart[offset])
        var best = Float.greatestFiniteMagnitude, index = -1
        let scales = SIMD8<Float>(repeating: scale)
        // The three levels are shift[0] + 0, 1, 2 (±1/8 offsets of −1, 0, 1), so level + shift[0] is exact.
        let base = SIMD8<Float>(repeating: shift[0])
        for first in stride(from: 0, to: count, by: 8) {
            // Eight candidates at once (IQuantGrid.chunkValues); each lane adds its terms in ggml's order.
            var d2 = SIMD8<Float>()
            for i in 0..<8 {
                let q = UnsafeRawPointer(chunk + 8 * i).loadUnaligned(as: SIMD8<Float>.self) + base
                let diff = scales * q - SIMD8<Float>(repeating: x[i])
                d2 += SIMD8<Float>(repeating: weight[i]) * diff * diff
            }
            for lane in 0..<Swift.min(8, count - first) where d2[lane] < best {
                best = d2[lane]
                index = Int(list[offset + 1 + first + lane])
            }
            chunk += 64
        }
        // ggml then scans the whole lattice with an indexing slip (x[point] for x[coordinate]) that only a
        // non-finite block reaches; inputs are checked finite before quantizing, so it is not reproduced.
        precondition(index >= 0, "IQ1: no lattice neighbour scored below FLT_MAX")
        for i in 0..<8 { levels[i] = pl[8 * index + i] }
        return index
    }

    /// Looks up (or searches) the lattice point of each group of 8 levels; false when some group was off it.
    @inline(__always)
    private static func points(
        _ xb: UnsafePointer<Float>, _ s: Scratch, groups: Int, scale: Float, shiftOf: (Int) -> SIMD4<Float>,
        _ index: inout (Int, Int, Int, Int)
    ) -> Bool {
        let grid = IQuantGrid.iq1s
        var onGrid = true
        withUnsafeMutableBytes(of: &index) { raw in
            let idx = raw.bindMemory(to: Int.self)
            for k in 0..<groups {
                var u = 0
                for j in 0..<8 { u |= Int(s.levels[8 * k + j]) << (2 * j) }
                var point = Int(grid.map[u])
                if point < 0 {
                    onGrid = false
                    point = nearest(-point - 1, xb + 8 * k, s.weight + 8 * k, scale, shiftOf(k), s.levels + 8 * k)
                }
                idx[k] = point
            }
        }
        return onGrid
    }

    /// Σ w·q·x and Σ w·q² of the chosen points with their shifts.
    @inline(__always)
    private static func refit(
        _ xb: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, groups: Int, points: (Int, Int, Int, Int),
        shiftOf: (Int) -> SIMD4<Float>, multiplier: Float = 1, into sums: inout (Float, Float)
    ) {
        let pl = IQuantGrid.iq1s.pointLevels
        withUnsafeBytes(of: points) { raw in
            let idx = raw.bindMemory(to: Int.self)
            for k in 0..<groups {
                let shift = shiftOf(k)
                for j in 0..<8 {
                    let w = weight[8 * k + j]
                    let q = level(shift, pl[8 * idx[k] + j]) * multiplier
                    sums.0 += w * q * xb[8 * k + j]
                    sums.1 += w * q * q
                }
            }
        }
    }

    // MARK: IQ1_S

    /// One IQ1_S row; ggml requires the importance matrix.
    static func quantizeS(_ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        withScratch { s in
            for b in 0..<(width / 256) { blockS(x + 256 * b, importance + 256 * b, out + sBlockBytes * b, s) }
        }
    }

    private static func blockS(_ x: UnsafePointer<Float>, _ qw: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ s: Scratch) {
        for i in 0..<sBlockBytes { out.storeByte(0, at: i) }
        var sumx2: Float = 0
        for i in 0..<256 { sumx2 += x[i] * x[i] }
        let sigma2 = 2 * sumx2 / 256
        var maxScale: Float = 0
        let sumx = s.sums, sumw = s.sums + 33
        for ib in 0..<8 {
            let xb = x + 32 * ib
            for i in 0..<32 { s.weight[i] = qw[32 * ib + i] * (sigma2 + xb[i] * xb[i]).squareRoot() }
            var max = abs(xb[0])
            for i in 1..<32 where abs(xb[i]) > max { max = abs(xb[i]) }
            if max < 1e-12 {
                s.scales[ib] = 0
                s.shifts[ib] = 1
                continue
            }
            sortedOrder(xb, 32, s.order)
            sumx[0] = 0
            sumw[0] = 0
            for j in 0..<32 {
                let i = s.order[j]
                sumx[j + 1] = sumx[j] + s.weight[i] * xb[i]
                sumw[j + 1] = sumw[j] + s.weight[i]
            }
            var bestScore = -Float.greatestFiniteMagnitude, scale = max
            var best1 = -1, best2 = -1, bestShift: Int8 = 0
            let p = plus, m = minus
            for i1 in 0...32 {
                for i2 in i1...32 {
                    let a = sumx[i1] - sumx[0], b = sumx[i2] - sumx[i1], c = sumx[32] - sumx[i2]
                    let wa = sumw[i1] - sumw[0], wb = sumw[i2] - sumw[i1], wc = sumw[32] - sumw[i2]
                    var sumqx = a * p[0] + b * p[1] + c * p[2]
                    var sumq2 = wa * p[0] * p[0] + wb * p[1] * p[1] + wc * p[2] * p[2]
                    if sumq2 > 0 && sumqx * sumqx > bestScore * sumq2 {
                        scale = sumqx / sumq2
                        bestScore = scale * sumqx
                        best1 = i1
                        best2 = i2
                        bestShift = 1
                    }
                    sumqx = a * m[0] + b * m[1] + c * m[2]
                    sumq2 = wa * m[0] * m[0] + wb * m[1] * m[1] + wc * m[2] * m[2]
                    if sumq2 > 0 && sumqx * sumqx > bestScore * sumq2 {
                        scale = sumqx / sumq2
                        bestScore = scale * sumqx
                        best1 = i1
                        best2 = i2
                        bestShift = -1
                    }
                }
            }
            if best1 < 0 || best2 < 0 || bestShift == 0 {
                s.scales[ib] = 0
                s.shifts[ib] = 1
                continue
            }
            for j in 0..<32 { s.levels[s.order[j]] = j < best1 ? 0 : j < best2 ? 1 : 2 }
            if scale < 0 {
                for j in 0..<32 { s.levels[j] = 2 - s.levels[j] }
                scale = -scale
                bestShift = -bestShift
            }
            let shift = bestShift == 1 ? plus : minus
            var index = (0, 0, 0, 0)
            if !points(xb, s, groups: 4, scale: scale, shiftOf: { _ in shift }, &index) {
                var sums: (Float, Float) = (0, 0)
                refit(xb, s.weight, groups: 4, points: index, shiftOf: { _ in shift }, into: &sums)
                if sums.0 > 0 && sums.1 > 0 { scale = sums.0 / sums.1 }
            }
            var high: UInt16 = 0
            withUnsafeBytes(of: index) { raw in
                let idx = raw.bindMemory(to: Int.self)
                for k in 0..<4 {
                    out.storeByte(UInt8(idx[k] & 255), at: 2 + 4 * ib + k)
                    high |= UInt16(idx[k] >> 8) << (3 * UInt16(k))
                }
            }
            out.storeHalf(high, at: 34 + 2 * ib)
            s.scales[ib] = scale
            s.shifts[ib] = bestShift
            if scale > maxScale { maxScale = scale }
        }
        guard maxScale != 0 else { return }
        let d = maxScale / 15
        out.storeHalf(GGMLRounding.half(d * 1.125), at: 0)
        let id = 1 / d
        for ib in 0..<8 {
            var l = UInt16(Swift.max(0, Swift.min(7, GGMLRounding.nearestInt(0.5 * (id * s.scales[ib] - 1)))))
            if s.shifts[ib] == -1 { l |= 8 }
            out.storeHalf(out.loadHalf(at: 34 + 2 * ib) | l << 12, at: 34 + 2 * ib)
        }
    }

    // MARK: IQ1_M

    /// One IQ1_M row, with or without an importance matrix.
    static func quantizeM(_ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer) {
        withScratch { s in
            for b in 0..<(width / 256) { blockM(x + 256 * b, importance.map { $0 + 256 * b }, out + mBlockBytes * b, s) }
        }
    }

    /// The shift of group k (0 or 1) of a 16-value block whose shift pair is `k4` (0: ++, 1: +−, 2: −+, 3: −−).
    @inline(__always)
    private static func mShift(_ k4: Int8, _ group: Int) -> SIMD4<Float> {
        group == 0 ? (k4 < 2 ? plus : minus) : (k4 % 2 == 0 ? plus : minus)
    }

    private static func mWeights(_ xb: UnsafePointer<Float>, _ qw: UnsafePointer<Float>?, _ sigma2: Float, _ w: UnsafeMutablePointer<Float>)
    {
        if let qw {
            for i in 0..<16 { w[i] = qw[i] * (sigma2 + xb[i] * xb[i]).squareRoot() }
        } else {
            for i in 0..<16 { w[i] = xb[i] * xb[i] }
        }
    }

    private static func blockM(_ x: UnsafePointer<Float>, _ qw: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer, _ s: Scratch) {
        for i in 0..<mBlockBytes { out.storeByte(0, at: i) }
        var sumx2: Float = 0
        for i in 0..<256 { sumx2 += x[i] * x[i] }
        let sigma2 = 2 * sumx2 / 256
        var maxScale: Float = 0
        let p = plus, m = minus
        // Per half of the block: prefix sums of w·x (px) and w (pw) over the sorted order.
        let px0 = s.sums, px1 = s.sums + 17, pw0 = s.sums + 34, pw1 = s.sums + 51
        let cp1 = p[0] * p[0] - p[1] * p[1], cp2 = p[1] * p[1] - p[2] * p[2]
        let cm1 = m[0] * m[0] - m[1] * m[1], cm2 = m[1] * m[1] - m[2] * m[2]
        for ib in 0..<16 {
            let xb = x + 16 * ib
            mWeights(xb, qw.map { $0 + 16 * ib }, sigma2, s.weight)
            var max = abs(xb[0])
            for i in 1..<16 where abs(xb[i]) > max { max = abs(xb[i]) }
            if max < 1e-7 {
                s.scales[ib] = 0
                s.shifts[ib] = 0
                continue
            }
            sortedOrder(xb, 16, s.order)
            px0[0] = 0
            px1[0] = 0
            pw0[0] = 0
            pw1[0] = 0
            for j in 0..<16 {
                let i = s.order[j]
                if i < 8 {
                    px0[j + 1] = px0[j] + s.weight[i] * xb[i]
                    px1[j + 1] = px1[j]
                    pw0[j + 1] = pw0[j] + s.weight[i]
                    pw1[j + 1] = pw1[j]
                } else {
                    px1[j + 1] = px1[j] + s.weight[i] * xb[i]
                    px0[j + 1] = px0[j]
                    pw1[j + 1] = pw1[j] + s.weight[i]
                    pw0[j + 1] = pw0[j]
                }
            }
            let tx = (px0[16], px1[16]), tw = (pw0[16], pw1[16])
            var bestScore = -Float.greatestFiniteMagnitude, scale = max
            var best1 = -1, best2 = -1, bestK: Int8 = -1
            for i1 in 0...16 {
                for i2 in i1...16 {
                    let sx0 = px0[i1] + px0[i2], sx1 = px1[i1] + px1[i2]
                    let qxp0 = tx.0 * p[2] - sx0, qxm0 = tx.0 * m[2] - sx0
                    let qxp1 = tx.1 * p[2] - sx1, qxm1 = tx.1 * m[2] - sx1
                    let q2p0 = tw.0 * p[2] * p[2] + pw0[i1] * cp1 + pw0[i2] * cp2
                    let q2m0 = tw.0 * m[2] * m[2] + pw0[i1] * cm1 + pw0[i2] * cm2
                    let q2p1 = tw.1 * p[2] * p[2] + pw1[i1] * cp1 + pw1[i2] * cp2
                    let q2m1 = tw.1 * m[2] * m[2] + pw1[i1] * cm1 + pw1[i2] * cm2
                    let sumqx = SIMD4<Float>(qxp0 + qxp1, qxp0 + qxm1, qxm0 + qxp1, qxm0 + qxm1)
                    let sumq2 = SIMD4<Float>(q2p0 + q2p1, q2p0 + q2m1, q2m0 + q2p1, q2m0 + q2m1)
                    for k in 0..<4 where sumq2[k] > 0 && sumqx[k] * sumqx[k] > bestScore * sumq2[k] {
                        scale = sumqx[k] / sumq2[k]
                        bestScore = scale * sumqx[k]
                        best1 = i1
                        best2 = i2
                        bestK = Int8(k)
                    }
                }
            }
            if best1 < 0 || best2 < 0 || bestK < 0 {
                s.scales[ib] = 0
                s.shifts[ib] = 0
                continue
            }
            for j in 0..<16 { s.levels[s.order[j]] = j < best1 ? 0 : j < best2 ? 1 : 2 }
            if scale < 0 {
                for j in 0..<16 { s.levels[j] = 2 - s.levels[j] }
                scale = -scale
                bestK = 3 - bestK
            }
            let k4 = bestK
            var index = (0, 0, 0, 0)
            if !points(xb, s, groups: 2, scale: scale, shiftOf: { mShift(k4, $0) }, &index) {
                var sums: (Float, Float) = (0, 0)
                refit(xb, s.weight, groups: 2, points: index, shiftOf: { mShift(k4, $0) }, into: &sums)
                if sums.0 > 0 && sums.1 > 0 { scale = sums.0 / sums.1 }
            }
            out.storeByte(UInt8(index.0 & 255), at: 2 * ib)
            out.storeByte(UInt8(index.1 & 255), at: 2 * ib + 1)
            out.storeByte(UInt8(index.0 >> 8) | UInt8(index.1 >> 8) << 4, at: 32 + ib)
            s.scales[ib] = scale
            s.shifts[ib] = bestK
            if scale > maxScale { maxScale = scale }
        }
        guard maxScale != 0 else { return }
        var d = maxScale / 15
        let id = 1 / d
        var sums: (Float, Float) = (0, 0)
        let masks = SIMD4<UInt8>(0x00, 0x80, 0x08, 0x88)
        for ib in 0..<16 {
            let l = Swift.max(0, Swift.min(7, GGMLRounding.nearestInt(0.5 * (id * s.scales[ib] - 1))))
            let word = 48 + 2 * (ib / 4)
            out.storeHalf(out.loadHalf(at: word) | UInt16(l) << (3 * UInt16(ib % 4)), at: word)
            let qh = out.loadByte(at: 32 + ib) | masks[Int(s.shifts[ib])]
            out.storeByte(qh, at: 32 + ib)
            let xb = x + 16 * ib
            mWeights(xb, qw.map { $0 + 16 * ib }, sigma2, s.weight)
            let index = (
                Int(out.loadByte(at: 2 * ib)) + ((Int(qh) << 8) & 0x700), Int(out.loadByte(at: 2 * ib + 1)) + ((Int(qh) << 4) & 0x700), 0, 0
            )
            let k4 = s.shifts[ib]
            refit(xb, s.weight, groups: 2, points: index, shiftOf: { mShift(k4, $0) }, multiplier: Float(2 * l + 1), into: &sums)
        }
        if sums.1 > 0 { d = sums.0 / sums.1 }
        let half = GGMLRounding.half(d * 1.1125)
        for w in 0..<4 {
            let word = 48 + 2 * w
            out.storeHalf(out.loadHalf(at: word) | ((half >> (4 * UInt16(w))) & 0xF) << 12, at: word)
        }
    }
}
