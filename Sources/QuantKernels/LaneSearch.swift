// Lane-parallel versions of ggml's per-sub-block scale searches: SIMD lane l runs the search of sub-block l
// with exactly the scalar code's f32 operations in the same order, so the codes are bit-identical while
// 8 sub-blocks advance at once. (Vectorizing *within* a sub-block would reorder sums and change bytes.)

enum LaneSearch {
    /// Lane mask type of 8 f32 lanes.
    typealias Mask = SIMDMask<SIMD8<Int32>>

    /// ggml's `nearest_int` then a clamp to [low, high], in f32: adding and removing 1.5·2²³ rounds
    /// half-to-even exactly as the integer trick does for |v| < 2²², and clamping the rounded f32 equals
    /// clamping the integer. Lanes whose argument is outside that range (NaN, ±∞, or huge: flat or subnormal
    /// sub-blocks) are flagged in `unsafe`; their sub-blocks are redone by the scalar port, which reproduces
    /// ggml's integer behaviour there. (f32 compare-and-blend vectorizes on SSE2; integer min/max does not.)
    @inline(__always)
    static func clampedNearest(_ v: SIMD8<Float>, _ low: Float, _ high: Float, unsafe: inout Mask) -> SIMD8<Float> {
        unsafe .|= .!(magnitude(v) .< 4_194_303)
        var r = (v + 12_582_912) - 12_582_912
        r.replace(with: low, where: r .< low)
        r.replace(with: high, where: r .> high)
        return r
    }

    /// The same without the range check, for callers that proved every argument is within ±nmax + 1.
    @inline(__always)
    static func clampedNearest(_ v: SIMD8<Float>, _ low: Float, _ high: Float) -> SIMD8<Float> {
        var r = (v + 12_582_912) - 12_582_912
        r.replace(with: low, where: r .< low)
        r.replace(with: high, where: r .> high)
        return r
    }

    @inline(__always)
    static func magnitude(_ v: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
    }

    /// `ScaleSearch.asymmetric` (error |d| with `useMAD`, else d²) for 8 sub-blocks of `n` values at once. `x[i]` and
    /// `w[i]` hold element i of every sub-block; codes land in `codes[i]`. Returns (scale, −min) per lane.
    static func asymmetric(
        _ n: Int, _ nmax: Int32, _ x: UnsafePointer<SIMD8<Float>>, _ w: UnsafePointer<SIMD8<Float>>,
        _ codes: UnsafeMutablePointer<SIMD8<Float>>, scratch: UnsafeMutablePointer<SIMD8<Float>>,
        grid: SearchGrid, qkx3: Bool, useMAD: Bool = false
    ) -> (scale: SIMD8<Float>, theMin: SIMD8<Float>, unsafe: Mask) {
        let rmin = grid.rmin, rdelta = grid.rdelta, steps = grid.steps
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
        var unsafe = qkx3 ? max .<= min : max .== min  // flat sub-blocks: the scalar port handles them
        let fmax = Float(nmax)
        var iscale = SIMD8<Float>(repeating: fmax) / (max - min)
        var scale = 1 / iscale
        var bestError = SIMD8<Float>(repeating: 0)
        for i in 0..<n {
            let l = clampedNearest(iscale * (x[i] - min), 0, fmax, unsafe: &unsafe)
            codes[i] = l
            let diff = scale * l + min - x[i]
            bestError += w[i] * (useMAD ? magnitude(diff) : diff * diff)
        }
        if steps >= 1 {
            for step in 0...steps {
                // `min` moves when a step wins, and ggml divides by the current (max − min).
                iscale = SIMD8<Float>(repeating: rmin + rdelta * Float(step) + fmax) / (max - min)
                var sumL = SIMD8<Float>(repeating: 0), sumL2 = sumL, sumXL = sumL
                for i in 0..<n {
                    let fl = clampedNearest(iscale * (x[i] - min), 0, fmax, unsafe: &unsafe)
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
                    error += w[i] * (useMAD ? magnitude(diff) : diff * diff)
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
        // −min with the sign bit flipped, as C's unary minus (SIMD's prefix − is 0 − x, which turns −(+0) into +0;
        // Q4_1 / Q5_1 store the min itself, so the sign of a zero is in the bytes).
        let negated = unsafeBitCast(unsafeBitCast(min, to: SIMD8<UInt32>.self) ^ 0x8000_0000, to: SIMD8<Float>.self)
        return (scale, negated, unsafe)
    }

    /// Per lane, the first value of largest magnitude among x[0..<n] (ggml's strict-> scan) and that magnitude.
    @inline(__always)
    static func largestMagnitude(_ x: UnsafePointer<SIMD8<Float>>, _ n: Int) -> (max: SIMD8<Float>, amax: SIMD8<Float>) {
        var max = SIMD8<Float>(repeating: 0), amax = max
        for i in 0..<n {
            let ax = magnitude(x[i])
            let larger = ax .> amax
            amax.replace(with: ax, where: larger)
            max.replace(with: x[i], where: larger)
        }
        return (max, amax)
    }

    /// `ScaleSearch.symmetricQ3` (ggml's make_q3_quants with x² weights) for 8 sub-blocks of 16 values at once: the
    /// same coordinate passes per lane, lanes that stop changing stay where they are (a pass without a change is a
    /// fixed point, so running it again changes nothing), codes offset by nmax.
    static func symmetricQ3(
        _ nmax: Int32, _ x: UnsafePointer<SIMD8<Float>>, _ codes: UnsafeMutablePointer<SIMD8<Float>>
    ) -> (scale: SIMD8<Float>, unsafe: Mask) {
        let n = 16
        let (max, amax) = largestMagnitude(x, n)
        var unsafe =
            (amax .< ScaleSearch.groupMaxEpsilon) .| .!(magnitude(SIMD8<Float>(repeating: Float(nmax)) / max) .< Float.infinity)
        let low = Float(-nmax), high = Float(nmax - 1)
        let iscale = SIMD8<Float>(repeating: Float(-nmax)) / max
        var sumlx = SIMD8<Float>(repeating: 0), suml2 = sumlx
        for i in 0..<n {
            let l = clampedNearest(iscale * x[i], low, high)
            codes[i] = l
            let w = x[i] * x[i]
            sumlx += w * x[i] * l
            suml2 += w * l * l
        }
        for _ in 0..<5 {
            var changed = Mask(repeating: false)
            for i in 0..<n {
                let w = x[i] * x[i], li = codes[i]
                let slx = sumlx - w * x[i] * li
                let positive = slx .> 0
                let sl2 = suml2 - w * li * li
                let target = x[i] * sl2 / slx
                // Only lanes with slx > 0 evaluate it in ggml; out of the trick's range there, the scalar port redoes them.
                unsafe .|= positive .& .!(magnitude(target) .< 4_194_303)
                let newL = clampedNearest(target, low, high)
                let newX = slx + w * x[i] * newL, newL2 = sl2 + w * newL * newL
                let accept = positive .& (newL .!= li) .& (newL2 .> 0) .& (newX * newX * suml2 .> sumlx * sumlx * newL2)
                codes[i].replace(with: newL, where: accept)
                sumlx.replace(with: newX, where: accept)
                suml2.replace(with: newL2, where: accept)
                changed .|= accept
            }
            if !any(changed) { break }
        }
        for i in 0..<n { codes[i] += Float(nmax) }
        var scale = sumlx / suml2
        scale.replace(with: 0, where: .!(suml2 .> 0))
        return (scale, unsafe)
    }

    /// `ScaleSearch.symmetric` (rmse type 1: pass x² as `weights`, or the imatrix) for 8 sub-blocks of `n` values at once.
    static func symmetric(
        _ nmax: Int32, _ x: UnsafePointer<SIMD8<Float>>, weights: UnsafePointer<SIMD8<Float>>,
        _ codes: UnsafeMutablePointer<SIMD8<Float>>, count n: Int = 16
    ) -> (scale: SIMD8<Float>, unsafe: Mask) {
        let (max, amax) = largestMagnitude(x, n)
        // Every argument is iscale·x with |x| ≤ |max| and |iscale| ≤ (nmax + 0.9)/|max|, so all stay within
        // ±(nmax + 1) whenever that bound is finite. All-zero sub-blocks and those whose bound overflows
        // (subnormal maxima) are flagged for the scalar port.
        let unsafe =
            (amax .< ScaleSearch.groupMaxEpsilon) .| .!(magnitude(SIMD8<Float>(repeating: Float(nmax) + 0.9) / max) .< Float.infinity)
        let low = Float(-nmax), high = Float(nmax - 1)
        let offset = SIMD8<Float>(repeating: Float(nmax))
        @inline(__always) func weight(_ i: Int) -> SIMD8<Float> { weights[i] }
        var iscale = SIMD8<Float>(repeating: Float(-nmax)) / max
        var sumlx = SIMD8<Float>(repeating: 0), suml2 = sumlx
        for i in 0..<n {
            let fl = clampedNearest(iscale * x[i], low, high)
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
                let fl = clampedNearest(iscale * x[i], low, high)
                let w = weight(i)
                sumlx += w * x[i] * fl
                suml2 += w * fl * fl
            }
            let better = (suml2 .> 0) .& (sumlx * sumlx .> best * suml2)
            if any(better) {
                for i in 0..<n {
                    let fl = clampedNearest(iscale * x[i], low, high)
                    codes[i].replace(with: fl + offset, where: better)
                }
                scale.replace(with: sumlx / suml2, where: better)
                best.replace(with: scale * sumlx, where: better)
            }
        }
        return (scale, unsafe)
    }
}
