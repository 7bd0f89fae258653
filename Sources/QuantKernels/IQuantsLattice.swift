// IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S: magnitudes as lattice points (IQuantGrid), signs apart, one scale per
// 16- or 32-value block relative to an f16 super-scale. The quantizers are ggml's `quantize_row_iq2_xxs_impl`,
// `_iq2_xs_impl`, `_iq2_s_impl`, `_iq3_xxs_impl` and `_iq3_s_impl` (ggml src/ggml-quants.c), reproduced with the same
// float operations in the same order: a scan of trial scales, each rounding every group to the lattice (nearest
// listed neighbour when the rounded word is not a point), the best weighted fit kept, then a refit.

enum IQuantsLattice {
    /// One of the five formats: its lattice, search constants and block layout.
    struct Format {
        let grid: IQuantGrid
        /// Values per block with its own scale (32 or 16).
        let block: Int
        /// Levels run 0 ..< maxQ (ggml `kMaxQ`).
        let maxQ: Int32
        /// Trial steps −trials…trials of `step` around 2·maxQ − 1 (IQ2_XXS starts from make_qp_quants instead).
        let trials: Int, step: Float
        /// Signs stored as 7 bits with the count of negatives made even by flipping the smallest weighted value.
        let evenSigns: Bool
        /// σ² = sigmaFactor · Σx² / 256.
        let sigmaFactor: Float
        /// Blocks whose largest magnitude is below this get scale 0 (`GROUP_MAX_EPS*`; 0 means "exactly zero").
        let epsilon: Float
        /// Multiplier on the stored super-scale (ggml's fudge factors).
        let fudge: Float
        /// After the scan, refit every group (true) or only those whose best trial was off the lattice.
        let refitAll: Bool
        /// IQ2_XXS: the scan is centred on make_qp_quants' scale and the refit always runs.
        var positiveFitStart = false
        /// IQ3_S counts groups as off the lattice until a trial wins (so a block no trial improves is refit).
        var startOffGrid = false

        static let iq2xxs = Format(
            grid: .iq2xxs, block: 32, maxQ: 3, trials: 6, step: 0.1, evenSigns: true, sigmaFactor: 1, epsilon: 1e-15, fudge: 1,
            refitAll: true, positiveFitStart: true)
        static let iq2xs = Format(
            grid: .iq2xs, block: 16, maxQ: 3, trials: 9, step: 0.1, evenSigns: true, sigmaFactor: 1, epsilon: 1e-15, fudge: 1,
            refitAll: false)
        static let iq2s = Format(
            grid: .iq2s, block: 16, maxQ: 3, trials: 9, step: 0.1, evenSigns: false, sigmaFactor: 2, epsilon: 1e-8, fudge: 0.9875,
            refitAll: false)
        static let iq3xxs = Format(
            grid: .iq3xxs, block: 32, maxQ: 8, trials: 15, step: 0.2, evenSigns: true, sigmaFactor: 2, epsilon: 1e-8,
            fudge: 1.0125, refitAll: false)
        static let iq3s = Format(
            grid: .iq3s, block: 32, maxQ: 8, trials: 9, step: 0.2, evenSigns: false, sigmaFactor: 2, epsilon: 0, fudge: 1.033,
            refitAll: true, startOffGrid: true)
    }

    enum Kind { case iq2xxs, iq2xs, iq2s, iq3xxs, iq3s }

    static func format(_ kind: Kind) -> Format {
        switch kind {
        case .iq2xxs: .iq2xxs
        case .iq2xs: .iq2xs
        case .iq2s: .iq2s
        case .iq3xxs: .iq3xxs
        case .iq3s: .iq3s
        }
    }

    static func blockBytes(_ kind: Kind) -> Int {
        switch kind {
        case .iq2xxs: 66
        case .iq2xs: 74
        case .iq2s: 82
        case .iq3xxs: 98
        case .iq3s: 110
        }
    }

    // MARK: Quantize

    /// One row (a multiple of 256 values). `importance` may be nil only for IQ2_S, IQ3_XXS and IQ3_S.
    static func quantize(
        _ kind: Kind, _ x: UnsafePointer<Float>, _ width: Int, importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer
    ) {
        let format = format(kind), bytes = blockBytes(kind)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * 32 + 16) { floats in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 64) { codes in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: 16) { indices in
                    let scratch = Scratch(
                        weight: floats.baseAddress!, root: floats.baseAddress! + 32, xval: floats.baseAddress! + 64,
                        scales: floats.baseAddress! + 96, levels: codes.baseAddress!, trial: codes.baseAddress! + 32,
                        points: indices.baseAddress!)
                    for b in 0..<(width / 256) {
                        superBlock(
                            kind, format, x + 256 * b, importance.map { $0 + 256 * b }, out + bytes * b, scratch)
                    }
                }
            }
        }
    }

    /// Working memory for one block (pointers into one stack allocation).
    struct Scratch {
        let weight: UnsafeMutablePointer<Float>, root: UnsafeMutablePointer<Float>, xval: UnsafeMutablePointer<Float>
        /// Per-block scales of the super-block (up to 16).
        let scales: UnsafeMutablePointer<Float>
        /// Chosen levels and the trial's levels, one per value of the block.
        let levels: UnsafeMutablePointer<Int8>, trial: UnsafeMutablePointer<Int8>
        /// The chosen lattice point of each group of the block.
        let points: UnsafeMutablePointer<Int32>
    }

    private static func superBlock(
        _ kind: Kind, _ f: Format, _ x: UnsafePointer<Float>, _ importance: UnsafePointer<Float>?, _ out: UnsafeMutableRawPointer,
        _ s: Scratch
    ) {
        let bytes = blockBytes(kind)
        for i in 0..<bytes { out.storeByte(0, at: i) }
        var sumx2: Float = 0
        for i in 0..<256 { sumx2 += x[i] * x[i] }
        let sigma2 = f.sigmaFactor * sumx2 / 256
        let n = f.block, dims = f.grid.dims, groups = n / dims
        var maxScale: Float = 0
        var signs = (UInt8(0), UInt8(0), UInt8(0), UInt8(0))
        for ib in 0..<(256 / n) {
            let xb = x + n * ib
            if let importance {
                let qw = importance + n * ib
                for i in 0..<n { s.weight[i] = qw[i] * (sigma2 + xb[i] * xb[i]).squareRoot() }
            } else if kind == .iq2s {
                for i in 0..<n { s.weight[i] = 0.25 * sigma2 + xb[i] * xb[i] }
            } else {
                for i in 0..<n { s.weight[i] = xb[i] * xb[i] }
            }
            for i in 0..<n { s.root[i] = s.weight[i].squareRoot() }
            withUnsafeMutableBytes(of: &signs) { sign in
                for k in 0..<(n / 8) { sign[k] = groupSigns(xb + 8 * k, s.weight + 8 * k, s.xval + 8 * k, even: f.evenSigns) }
            }
            var max = s.xval[0]
            for i in 1..<n where s.xval[i] > max { max = s.xval[i] }
            for i in 0..<n { s.levels[i] = 0 }
            let empty = f.epsilon == 0 ? max == 0 : max < f.epsilon
            if empty {
                s.scales[ib] = 0
                continue
            }
            var scale: Float, reference: Float
            if f.positiveFitStart {
                let qp = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { codes in
                    let result = ScaleSearch.positive(32, f.maxQ + 1, s.xval, codes.baseAddress!, weights: s.weight)
                    for i in 0..<32 { s.levels[i] = Int8(bitPattern: codes[i]) }
                    return result
                }
                reference = qp * Float(f.maxQ)
                if reference <= 0 {
                    s.scales[ib] = 0
                    for i in 0..<n { s.levels[i] = 0 }
                    continue
                }
                scale = qp
            } else {
                reference = max
                scale = max / Float(2 * f.maxQ - 1)
            }
            scale = search(f, n: n, groups: groups, reference: reference, start: scale, s)
            if scale < 0 {
                scale = -scale
                withUnsafeMutableBytes(of: &signs) { sign in
                    for k in 0..<(n / 8) {
                        sign[k] = f.evenSigns ? ~sign[k] & 127 : ~sign[k]
                    }
                }
            }
            let grid = f.grid
            for k in 0..<groups {
                var u = 0
                for i in 0..<dims { u |= Int(s.levels[dims * k + i]) << (grid.bits * i) }
                let point = grid.map[u]
                precondition(point >= 0, "i-quant search left a group off the lattice")
                s.points[k] = point
            }
            withUnsafeBytes(of: signs) { sign in pack(kind, ib: ib, points: s.points, signs: sign, out) }
            s.scales[ib] = scale
            if scale > maxScale { maxScale = scale }
        }
        if maxScale == 0 {
            // ggml clears the codes (the signs stay for the layouts that keep them apart from the scales).
            switch kind {
            case .iq2xxs, .iq2xs, .iq3xxs: for i in 2..<bytes { out.storeByte(0, at: i) }
            case .iq2s, .iq3s: break
            }
            return
        }
        let d = maxScale / 31
        out.storeHalf(GGMLRounding.half(d * f.fudge), at: 0)
        let id = 1 / d
        for ib in 0..<(256 / n) {
            let l = UInt32(Swift.max(0, Swift.min(15, GGMLRounding.nearestInt(0.5 * (id * s.scales[ib] - 1)))))
            switch kind {
            case .iq2xxs, .iq3xxs:
                let offset = kind == .iq2xxs ? 2 + 8 * ib + 4 : 2 + 64 + 4 * ib
                let word = out.load(fromByteOffset: offset, as: UInt32.self).littleEndian
                out.storeBytes(of: (word | l << 28).littleEndian, toByteOffset: offset, as: UInt32.self)
            case .iq2xs, .iq2s:
                let offset = (kind == .iq2xs ? 66 : 74) + ib / 2
                let old = ib % 2 == 0 ? 0 : out.load(fromByteOffset: offset, as: UInt8.self)
                out.storeByte(old | UInt8(l) << (4 * UInt8(ib % 2)), at: offset)
            case .iq3s:
                let offset = 106 + ib / 2
                let old = ib % 2 == 0 ? 0 : out.load(fromByteOffset: offset, as: UInt8.self)
                out.storeByte(old | UInt8(l) << (4 * UInt8(ib % 2)), at: offset)
            }
        }
    }

    /// |x| of 8 values into `xval` and their sign bits; with `even` the count of negatives is made even by
    /// flipping the value of least weight·x² (ggml stores 7 sign bits and infers the eighth).
    @inline(__always)
    private static func groupSigns(
        _ xb: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ xval: UnsafeMutablePointer<Float>, even: Bool
    )
        -> UInt8
    {
        var flips = 0, s: UInt8 = 0
        for i in 0..<8 {
            if xb[i] >= 0 {
                xval[i] = xb[i]
            } else {
                xval[i] = -xb[i]
                flips += 1
                s |= 1 << UInt8(i)
            }
        }
        guard even else { return s }
        if flips % 2 == 1 {
            var imin = 0, min = weight[0] * xb[0] * xb[0]
            for i in 1..<8 {
                let ax = weight[i] * xb[i] * xb[i]
                if ax < min {
                    min = ax
                    imin = i
                }
            }
            xval[imin] = -xval[imin]
            s ^= 1 << UInt8(imin)
        }
        return s & 127
    }

    /// The trial-scale scan and refit of one block; returns the block's scale with `s.levels` on the lattice.
    @inline(__always)
    private static func search(_ f: Format, n: Int, groups: Int, reference: Float, start: Float, _ s: Scratch) -> Float {
        let grid = f.grid, dims = grid.dims
        var scale = start, best: Float = 0
        let allOnGrid = UInt32(1 << groups) - 1
        var onGrid: UInt32 = f.startOffGrid ? 0 : allOnGrid
        let center = Float(2 * f.maxQ - 1), top = f.maxQ - 1
        for step in -f.trials...f.trials {
            let id = (center + Float(step) * f.step) / reference
            let trialScale = 1 / id
            var trialOnGrid = allOnGrid
            roundLevels(s.xval, n, id: id, top: top, into: s.trial)
            for k in 0..<groups {
                var u = 0
                for i in 0..<dims { u |= Int(s.trial[dims * k + i]) << (grid.bits * i) }
                if grid.map[u] < 0 {
                    trialOnGrid &= ~(1 << UInt32(k))
                    nearest(grid, -Int(grid.map[u]) - 1, s.xval + dims * k, s.root + dims * k, trialScale, s.trial + dims * k)
                }
            }
            let (sumqx, sumq2) = fit(s.trial, s.xval, s.weight, n)
            if sumq2 > 0 && sumqx * sumqx > best * sumq2 {
                scale = sumqx / sumq2
                best = scale * sumqx
                for i in 0..<n { s.levels[i] = s.trial[i] }
                onGrid = trialOnGrid
            }
        }
        let refit = f.positiveFitStart || onGrid != allOnGrid
        if refit && scale > 0 {
            let id = 1 / scale
            for k in 0..<groups where f.refitAll || onGrid & (1 << UInt32(k)) == 0 {
                var u = 0
                for i in 0..<dims {
                    let l = Swift.max(0, Swift.min(top, GGMLRounding.nearestInt(0.5 * (id * s.xval[dims * k + i] - 1))))
                    s.levels[dims * k + i] = Int8(l)
                    u |= Int(l) << (grid.bits * i)
                }
                if grid.map[u] < 0 {
                    nearest(grid, -Int(grid.map[u]) - 1, s.xval + dims * k, s.root + dims * k, scale, s.levels + dims * k)
                }
            }
            let (sumqx, sumq2) = fit(s.levels, s.xval, s.weight, n)
            if sumq2 > 0 { scale = sumqx / sumq2 }
        }
        return scale
    }

    /// max(0, min(top, nearest_int(0.5·(id·x − 1)))) for n values (a multiple of 8), eight at a time: each lane is
    /// the same float operations as ggml's scalar loop, and nearest_int's magic-number rounding is exact per lane.
    @inline(__always)
    private static func roundLevels(_ x: UnsafePointer<Float>, _ n: Int, id: Float, top: Int32, into levels: UnsafeMutablePointer<Int8>) {
        let half = SIMD8<Float>(repeating: 0.5), one = SIMD8<Float>(repeating: 1), magic = SIMD8<Float>(repeating: 12_582_912)
        let ids = SIMD8<Float>(repeating: id), low = SIMD8<Int32>(repeating: 0), high = SIMD8<Int32>(repeating: top)
        for chunk in stride(from: 0, to: n, by: 8) {
            let v = UnsafeRawPointer(x + chunk).loadUnaligned(as: SIMD8<Float>.self)
            let shifted = half * (ids * v - one) + magic
            var l = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) & 0x007F_FFFF) &- 0x0040_0000
            l.replace(with: low, where: l .< low)
            l.replace(with: high, where: l .> high)
            for i in 0..<8 { levels[chunk + i] = Int8(truncatingIfNeeded: l[i]) }
        }
    }

    /// Σ w·x·q and Σ w·q² with q = 2·level + 1, in ggml's order: products eight at a time (exact per lane), sums
    /// one value after another.
    @inline(__always)
    private static func fit(
        _ levels: UnsafePointer<Int8>, _ xval: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ n: Int
    )
        -> (Float, Float)
    {
        var sumqx: Float = 0, sumq2: Float = 0
        for chunk in stride(from: 0, to: n, by: 8) {
            var q = SIMD8<Float>()
            for i in 0..<8 { q[i] = Float(2 * Int32(levels[chunk + i]) + 1) }
            let w = UnsafeRawPointer(weight + chunk).loadUnaligned(as: SIMD8<Float>.self)
            let x = UnsafeRawPointer(xval + chunk).loadUnaligned(as: SIMD8<Float>.self)
            let a = w * x * q, b = w * q * q
            for i in 0..<8 {
                sumqx += a[i]
                sumq2 += b[i]
            }
        }
        return (sumqx, sumq2)
    }

    /// The listed neighbour with the least Σ w·(scale·q − x)² (first on ties); its levels into `levels`.
    @inline(__always)
    private static func nearest(
        _ grid: IQuantGrid, _ offset: Int, _ xval: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ scale: Float,
        _ levels: UnsafeMutablePointer<Int8>
    ) {
        let dims = grid.dims, list = grid.neighbours
        let count = Int(list[offset])
        var chunk = grid.chunkValues + Int(grid.chunkStart[offset])
        var bestD2 = Float.greatestFiniteMagnitude, best = -1
        let scales = SIMD8<Float>(repeating: scale)
        for first in stride(from: 0, to: count, by: 8) {
            // Eight candidates at once; each lane adds its coordinates' terms in ggml's order.
            var d2 = SIMD8<Float>()
            for i in 0..<dims {
                let odd = UnsafeRawPointer(chunk + 8 * i).loadUnaligned(as: SIMD8<Float>.self)
                let diff = scales * odd - SIMD8<Float>(repeating: xval[i])
                d2 += SIMD8<Float>(repeating: weight[i]) * diff * diff
            }
            for lane in 0..<Swift.min(8, count - first) where d2[lane] < bestD2 {
                bestD2 = d2[lane]
                best = Int(list[offset + 1 + first + lane])
            }
            chunk += 8 * dims
        }
        precondition(best >= 0, "no lattice neighbour scored below FLT_MAX")
        for i in 0..<dims { levels[i] = grid.pointLevels[dims * best + i] }
    }

    /// Writes block `ib`'s lattice indices and signs into the super-block.
    private static func pack(
        _ kind: Kind, ib: Int, points: UnsafePointer<Int32>, signs: UnsafeRawBufferPointer, _ out: UnsafeMutableRawPointer
    ) {
        switch kind {
        case .iq2xxs:
            var packedSigns: UInt32 = 0
            for k in 0..<4 {
                out.storeByte(UInt8(points[k]), at: 2 + 8 * ib + k)
                packedSigns |= UInt32(signs[k]) << (7 * UInt32(k))
            }
            out.storeBytes(of: packedSigns.littleEndian, toByteOffset: 2 + 8 * ib + 4, as: UInt32.self)
        case .iq2xs:
            for k in 0..<2 {
                out.storeHalf(UInt16(points[k]) | UInt16(signs[k]) << 9, at: 2 + 2 * (2 * ib + k))
            }
        case .iq2s:
            for k in 0..<2 {
                let i8 = 2 * ib + k
                out.storeByte(UInt8(points[k] & 255), at: 2 + i8)
                let qh = 66 + i8 / 4
                out.storeByte(out.loadByte(at: qh) | UInt8(points[k] >> 8) << (2 * UInt8(i8 % 4)), at: qh)
                out.storeByte(signs[k], at: 2 + 32 + i8)
            }
        case .iq3xxs:
            for k in 0..<8 { out.storeByte(UInt8(points[k]), at: 2 + 8 * ib + k) }
            var packedSigns: UInt32 = 0
            for k in 0..<4 { packedSigns |= UInt32(signs[k]) << (7 * UInt32(k)) }
            out.storeBytes(of: packedSigns.littleEndian, toByteOffset: 2 + 64 + 4 * ib, as: UInt32.self)
        case .iq3s:
            var high: UInt8 = 0
            for k in 0..<8 {
                out.storeByte(UInt8(points[k] & 255), at: 2 + 8 * ib + k)
                high |= UInt8(points[k] >> 8) << UInt8(k)
            }
            out.storeByte(high, at: 66 + ib)
            for k in 0..<4 { out.storeByte(signs[k], at: 74 + 4 * ib + k) }
        }
    }
}
