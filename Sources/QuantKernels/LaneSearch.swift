// Lane-parallel versions of ggml's per-sub-block scale searches: SIMD lane l runs the search of sub-block l
// with exactly the scalar code's f32 operations in the same order, so the codes are bit-identical while
// 8 or 16 sub-blocks advance at once. (Vectorizing *within* a sub-block would reorder sums and change bytes.)

enum LaneSearch {
    /// ggml's `nearest_int`, kept in f32: adding and removing 1.5·2²³ rounds half-to-even exactly like the
    /// integer trick for |v| < 2²², which every call here satisfies (the arguments are bounded by nmax + 2),
    /// and clamping in f32 afterwards equals clamping the integer. Float lanes avoid SSE2's missing
    /// 32-bit integer min/max.
    @inline(__always)
    static func rounded(_ v: SIMD8<Float>) -> SIMD8<Float> { (v + 12_582_912) - 12_582_912 }

    @inline(__always)
    static func rounded(_ v: SIMD16<Float>) -> SIMD16<Float> { (v + 12_582_912) - 12_582_912 }

    /// Clamp by compare-and-blend (Swift's float `pointwiseMin/Max` carry NaN rules that do not vectorize).
    @inline(__always)
    static func clamp(_ v: SIMD8<Float>, _ low: SIMD8<Float>, _ high: SIMD8<Float>) -> SIMD8<Float> {
        var r = v
        r.replace(with: low, where: v .< low)
        r.replace(with: high, where: v .> high)
        return r
    }

    @inline(__always)
    static func clamp(_ v: SIMD16<Float>, _ low: SIMD16<Float>, _ high: SIMD16<Float>) -> SIMD16<Float> {
        var r = v
        r.replace(with: low, where: v .< low)
        r.replace(with: high, where: v .> high)
        return r
    }

    @inline(__always)
    static func magnitude(_ v: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
    }

    @inline(__always)
    static func magnitude(_ v: SIMD16<Float>) -> SIMD16<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: SIMD16<Float>.self)
    }

    /// `ScaleSearch.asymmetric` for 8 sub-blocks of `n` values at once. `x[i]` and `w[i]` hold element i of
    /// every sub-block; codes land in `codes[i]`. Returns (scale, −min) per lane.
    static func asymmetric(_ n: Int, _ nmax: Int32, _ x: UnsafePointer<SIMD8<Float>>, _ w: UnsafePointer<SIMD8<Float>>,
                           _ codes: UnsafeMutablePointer<SIMD8<Float>>, scratch: UnsafeMutablePointer<SIMD8<Float>>,
                           rmin: Float, rdelta: Float, steps: Int, qkx3: Bool) -> (SIMD8<Float>, SIMD8<Float>) {
        var min = x[0], max = x[0]
        var sumW = w[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            min.replace(with: x[i], where: x[i] .< min)
            max.replace(with: x[i], where: x[i] .> max)
            sumW += w[i]
            sumX += w[i] * x[i]
        }
        min.replace(with: 0, where: min .> 0)
        let flat = qkx3 ? max .<= min : max .== min
        let fmax = Float(nmax)
        var iscale = SIMD8<Float>(repeating: fmax) / (max - min)
        var scale = 1 / iscale
        var bestError = SIMD8<Float>(repeating: 0)
        let zero = SIMD8<Float>(repeating: 0), top = SIMD8<Float>(repeating: fmax)
        for i in 0..<n {
            let l = clamp(rounded(iscale * (x[i] - min)), zero, top)
            codes[i] = l
            let diff = scale * l + min - x[i]
            bestError += w[i] * (diff * diff)
        }
        if steps >= 1 {
            for step in 0...steps {
                // `min` moves when a step wins, and ggml divides by the current (max − min).
                iscale = SIMD8<Float>(repeating: rmin + rdelta * Float(step) + fmax) / (max - min)
                var sumL = SIMD8<Float>(repeating: 0), sumL2 = sumL, sumXL = sumL
                for i in 0..<n {
                    let fl = clamp(rounded(iscale * (x[i] - min)), zero, top)
                    scratch[i] = fl
                    sumL += w[i] * fl
                    sumL2 += w[i] * fl * fl
                    sumXL += w[i] * fl * x[i]
                }
                let determinant = sumW * sumL2 - sumL * sumL
                var thisScale = (sumW * sumXL - sumX * sumL) / determinant
                var thisMin = (sumL2 * sumX - sumL * sumXL) / determinant
                let clampMin = thisMin .> 0
                thisMin.replace(with: 0, where: clampMin)
                thisScale.replace(with: sumXL / sumL2, where: clampMin)
                var error = SIMD8<Float>(repeating: 0)
                for i in 0..<n {
                    let diff = thisScale * scratch[i] + thisMin - x[i]
                    error += w[i] * (diff * diff)
                }
                let better = (determinant .> 0) .& (error .< bestError)
                if any(better) {
                    for i in 0..<n { codes[i].replace(with: scratch[i], where: better) }
                    bestError.replace(with: error, where: better)
                    scale.replace(with: thisScale, where: better)
                    min.replace(with: thisMin, where: better)
                }
            }
        }
        if any(flat) {
            for i in 0..<n { codes[i].replace(with: 0, where: flat) }
            scale.replace(with: 0, where: flat)
        }
        return (scale, -min)
    }

    /// `ScaleSearch.symmetric` (rmse type 1: pass x² as `weights`, or the imatrix) for 8 sub-blocks of 16 values at once.
    static func symmetric(_ nmax: Int32, _ x: UnsafePointer<SIMD8<Float>>, weights: UnsafePointer<SIMD8<Float>>,
                          _ codes: UnsafeMutablePointer<SIMD8<Float>>) -> SIMD8<Float> {
        let n = 16
        var max = SIMD8<Float>(repeating: 0), amax = max
        for i in 0..<n {
            let ax = magnitude(x[i])
            let larger = ax .> amax
            amax.replace(with: ax, where: larger)
            max.replace(with: x[i], where: larger)
        }
        let flat = amax .< ScaleSearch.groupMaxEpsilon
        let low = SIMD8<Float>(repeating: Float(-nmax)), high = SIMD8<Float>(repeating: Float(nmax - 1)), offset = SIMD8<Float>(repeating: Float(nmax))
        @inline(__always) func weight(_ i: Int) -> SIMD8<Float> { weights[i] }
        var iscale = SIMD8<Float>(repeating: Float(-nmax)) / max
        var sumlx = SIMD8<Float>(repeating: 0), suml2 = sumlx
        for i in 0..<n {
            let fl = clamp(rounded(iscale * x[i]), low, high)
            codes[i] = fl + offset
            let w = weight(i)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        var scale = sumlx / suml2
        scale.replace(with: 0, where: suml2 .== 0)
        var best = scale * sumlx
        for step in -9...9 where step != 0 {
            iscale = -SIMD8<Float>(repeating: Float(nmax) + 0.1 * Float(step)) / max
            sumlx = .zero; suml2 = .zero
            for i in 0..<n {
                let fl = clamp(rounded(iscale * x[i]), low, high)
                let w = weight(i)
                sumlx += w * x[i] * fl
                suml2 += w * fl * fl
            }
            let better = (suml2 .> 0) .& (sumlx * sumlx .> best * suml2)
            if any(better) {
                for i in 0..<n {
                    let fl = clamp(rounded(iscale * x[i]), low, high)
                    codes[i].replace(with: fl + offset, where: better)
                }
                scale.replace(with: sumlx / suml2, where: better)
                best.replace(with: scale * sumlx, where: better)
            }
        }
        if any(flat) {
            for i in 0..<n { codes[i].replace(with: 0, where: flat) }
            scale.replace(with: 0, where: flat)
        }
        return scale
    }
}
