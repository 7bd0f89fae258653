// ggml's scale searches (make_qx_quants, make_q3_quants, make_qkx2/3_quants, make_qp_quants), ported
// operation for operation: same f32 evaluation order, same integer truncations, so the codes are identical.

enum ScaleSearch {
    /// Below this a group counts as all zero (ggml GROUP_MAX_EPS).
    static let groupMaxEpsilon: Float = 1e-15

    /// Symmetric codes in [−nmax, nmax−1] (stored + nmax) with a least-squares scale; `rmseType` 1 weights by
    /// x², 2 by 1, 3 by |x|, 4 by √|x|; `weights` overrides. Tries 18 nearby inverse scales.
    static func symmetric(
        _ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ codes: UnsafeMutablePointer<Int8>,
        rmseType: Int, weights: UnsafePointer<Float>?
    ) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n { let ax = abs(x[i]); if ax > amax { amax = ax; max = x[i] } }
        if amax < groupMaxEpsilon {
            for i in 0..<n { codes[i] = 0 }
            return 0
        }
        var iscale = Float(-nmax) / max
        if rmseType == 0 {
            for i in 0..<n {
                let l = GGMLRounding.nearestInt(iscale * x[i])
                codes[i] = Int8(truncatingIfNeeded: nmax + Swift.max(-nmax, Swift.min(nmax - 1, l)))
            }
            return 1 / iscale
        }
        @inline(__always) func weight(_ i: Int) -> Float {
            if let weights { return weights[i] }
            switch rmseType {
            case 1: return x[i] * x[i]
            case 2: return 1
            case 3: return abs(x[i])
            default: return abs(x[i]).squareRoot()
            }
        }
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            var l = GGMLRounding.nearestInt(iscale * x[i])
            l = Swift.max(-nmax, Swift.min(nmax - 1, l))
            codes[i] = Int8(truncatingIfNeeded: l + nmax)
            let w = weight(i), fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
        var best = scale * sumlx
        for step in -9...9 where step != 0 {
            iscale = -(Float(nmax) + 0.1 * Float(step)) / max
            sumlx = 0; suml2 = 0
            for i in 0..<n {
                var l = GGMLRounding.nearestInt(iscale * x[i])
                l = Swift.max(-nmax, Swift.min(nmax - 1, l))
                let w = weight(i), fl = Float(l)
                sumlx += w * x[i] * fl
                suml2 += w * fl * fl
            }
            if suml2 > 0 && sumlx * sumlx > best * suml2 {
                for i in 0..<n {
                    let l = GGMLRounding.nearestInt(iscale * x[i])
                    codes[i] = Int8(truncatingIfNeeded: nmax + Swift.max(-nmax, Swift.min(nmax - 1, l)))
                }
                scale = sumlx / suml2
                best = scale * sumlx
            }
        }
        return scale
    }

    /// Q3_K's symmetric search with coordinate descent on x²-weighted error (`make_q3_quants`, do_rmse).
    static func symmetricQ3(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ codes: UnsafeMutablePointer<Int8>) -> Float {
        var max: Float = 0, amax: Float = 0
        for i in 0..<n { let ax = abs(x[i]); if ax > amax { amax = ax; max = x[i] } }
        if amax < groupMaxEpsilon {
            for i in 0..<n { codes[i] = 0 }
            return 0
        }
        let iscale = Float(-nmax) / max
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            var l = GGMLRounding.nearestInt(iscale * x[i])
            l = Swift.max(-nmax, Swift.min(nmax - 1, l))
            codes[i] = Int8(truncatingIfNeeded: l)
            let w = x[i] * x[i], fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = x[i] * x[i]
                let li = Float(codes[i])
                var slx = sumlx - w * x[i] * li
                if slx > 0 {
                    var sl2 = suml2 - w * li * li
                    var newL = GGMLRounding.nearestInt(x[i] * sl2 / slx)
                    newL = Swift.max(-nmax, Swift.min(nmax - 1, newL))
                    if newL != Int32(codes[i]) {
                        let fl = Float(newL)
                        slx += w * x[i] * fl
                        sl2 += w * fl * fl
                        if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            codes[i] = Int8(truncatingIfNeeded: newL); sumlx = slx; suml2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        for i in 0..<n { codes[i] = codes[i] &+ Int8(truncatingIfNeeded: nmax) }
        return suml2 > 0 ? sumlx / suml2 : 0
    }

    /// Asymmetric codes in [0, nmax] with a fitted scale and min, trying each inverse scale of `grid`
    /// (`make_qkx2_quants` when `weights` is given, `make_qkx3_quants` semantics — x² weights and `max <= min` — when `qkx3` is true).
    /// Returns the scale; `theMin` receives −min.
    static func asymmetric(
        _ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, weights: UnsafePointer<Float>?,
        _ codes: UnsafeMutablePointer<UInt8>, theMin: inout Float, scratch: UnsafeMutablePointer<UInt8>,
        grid: SearchGrid, useMAD: Bool, qkx3: Bool
    ) -> Float {
        let rmin = grid.rmin, rdelta = grid.rdelta, steps = grid.steps
        @inline(__always) func weight(_ i: Int) -> Float { weights?[i] ?? x[i] * x[i] }
        var min = x[0], max = x[0]
        var sumW = weight(0)
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < min { min = x[i] }
            if x[i] > max { max = x[i] }
            let w = weight(i)
            sumW += w
            sumX += w * x[i]
        }
        if min > 0 { min = 0 }
        if qkx3 ? max <= min : max == min {
            for i in 0..<n { codes[i] = 0 }
            theMin = -min
            return 0
        }
        let fmax = Float(nmax)
        var iscale = fmax / (max - min)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = GGMLRounding.nearestInt(iscale * (x[i] - min))
            codes[i] = UInt8(truncatingIfNeeded: Swift.max(0, Swift.min(nmax, l)))
            var diff = scale * Float(codes[i]) + min - x[i]
            diff = useMAD ? abs(diff) : diff * diff
            bestError += weight(i) * diff
        }
        if steps < 1 {
            theMin = -min
            return scale
        }
        for step in 0...steps {
            iscale = (rmin + rdelta * Float(step) + fmax) / (max - min)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                var l = GGMLRounding.nearestInt(iscale * (x[i] - min))
                l = Swift.max(0, Swift.min(nmax, l))
                scratch[i] = UInt8(truncatingIfNeeded: l)
                let w = weight(i), fl = Float(l)
                sumL += w * fl
                sumL2 += w * fl * fl
                sumXL += w * fl * x[i]
            }
            let determinant = sumW * sumL2 - sumL * sumL
            if determinant > 0 {
                var thisScale = (sumW * sumXL - sumX * sumL) / determinant
                var thisMin = (sumL2 * sumX - sumL * sumXL) / determinant
                if thisMin > 0 {
                    thisMin = 0
                    thisScale = sumXL / sumL2
                }
                var error: Float = 0
                for i in 0..<n {
                    var diff = thisScale * Float(scratch[i]) + thisMin - x[i]
                    diff = useMAD ? abs(diff) : diff * diff
                    error += weight(i) * diff
                }
                if error < bestError {
                    for i in 0..<n { codes[i] = scratch[i] }
                    bestError = error
                    scale = thisScale
                    min = thisMin
                }
            }
        }
        theMin = -min
        return scale
    }

    /// Quantizes non-negative sub-block scales to [0, nmax] (`make_qp_quants`).
    static func positive(
        _ n: Int, _ nmax: Int32, _ x: UnsafePointer<Float>, _ codes: UnsafeMutablePointer<UInt8>,
        weights: UnsafePointer<Float>
    ) -> Float {
        var max: Float = 0
        for i in 0..<n { max = Swift.max(max, x[i]) }
        if max < groupMaxEpsilon {
            for i in 0..<n { codes[i] = 0 }
            return 0
        }
        var iscale = Float(nmax) / max
        for i in 0..<n { codes[i] = UInt8(truncatingIfNeeded: GGMLRounding.nearestInt(iscale * x[i])) }
        let scale = 1 / iscale
        var bestMSE: Float = 0
        for i in 0..<n {
            let diff = x[i] - scale * Float(codes[i])
            bestMSE += weights[i] * diff * diff
        }
        for step in -4...4 where step != 0 {
            let iscaleStep = (0.1 * Float(step) + Float(nmax)) / max
            let scaleStep = 1 / iscaleStep
            var mse: Float = 0
            for i in 0..<n {
                let l = Swift.min(nmax, GGMLRounding.nearestInt(iscaleStep * x[i]))
                let diff = x[i] - scaleStep * Float(l)
                mse += weights[i] * diff * diff
            }
            if mse < bestMSE {
                bestMSE = mse
                iscale = iscaleStep
            }
        }
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = Swift.min(nmax, GGMLRounding.nearestInt(iscale * x[i]))
            codes[i] = UInt8(truncatingIfNeeded: l)
            let w = weights[i], fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = weights[i]
                let li = Float(codes[i])
                var slx = sumlx - w * x[i] * li
                var sl2 = suml2 - w * li * li
                if slx > 0 && sl2 > 0 {
                    let newL = Swift.min(nmax, GGMLRounding.nearestInt(x[i] * sl2 / slx))
                    if newL != Int32(codes[i]) {
                        let fl = Float(newL)
                        slx += w * x[i] * fl
                        sl2 += w * fl * fl
                        if slx * slx * suml2 > sumlx * sumlx * sl2 {
                            codes[i] = UInt8(truncatingIfNeeded: newL); sumlx = slx; suml2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        return suml2 > 0 ? sumlx / suml2 : 0
    }
}

/// The inverse scales ggml's asymmetric searches try: (rmin + rdelta·step + nmax) / (max − min) for step 0…steps
/// (`make_qkx2_quants` / `make_qkx3_quants` arguments in ggml-quants.c), one named grid per use.
public struct SearchGrid: Sendable, Equatable {
    public let rmin: Float, rdelta: Float, steps: Int

    /// With an importance vector (Q2_K, Q4_K, Q5_K, Q4_1, Q5_1): make_qkx3_quants(…, −0.9, 0.05, 36, …).
    public static let importance = SearchGrid(rmin: -0.9, rdelta: 0.05, steps: 36)
    /// Q2_K without one: make_qkx2_quants(16, 3, …, −0.5, 0.1, 15, true).
    public static let q2K = SearchGrid(rmin: -0.5, rdelta: 0.1, steps: 15)
    /// Q4_K without one: make_qkx2_quants(32, 15, …, −1, 0.1, 20, false).
    public static let q4K = SearchGrid(rmin: -1, rdelta: 0.1, steps: 20)
    /// Q5_K without one: make_qkx2_quants(32, 31, …, −0.5, 0.1, 15, false).
    public static let q5K = SearchGrid(rmin: -0.5, rdelta: 0.1, steps: 15)
}
