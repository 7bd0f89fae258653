// The bytes `moeq fit --target T` may fill on a target, per tier, as llama.cpp would place a model there
// (formats/hardware/README.md): every tensor but the routed experts goes to the fast tier (GPUs, or the unified
// pool) with the KV cache, llama.cpp's per-device margin and compute buffer taken off first; the routed experts go
// to system RAM (`-ot exps=CPU` / `--n-cpu-moe`), and whatever fast memory the other tensors leave takes whole
// layers of experts too. Nothing is planned onto disk: a fit that needs streaming from disk is not a fit.
import ModelCatalog
import QuantKernels

public struct FitBudget: Sendable, Equatable {
    public let target: String
    public let context: Int
    public let cacheType: QuantType
    /// The KV cache at `context` tokens (in the fast tier when there is one, else in RAM).
    public let kvBytes: Int
    /// Fast-tier bytes left for weights: usable device memory − per-device margin and compute buffer − KV cache.
    public let fastBytes: Int
    /// System-RAM bytes left for weights: capacity − the OS reserve (− the KV cache on a machine without a GPU).
    public let ramBytes: Int
    /// True on unified-memory machines: one pool, no RAM tier.
    public let unified: Bool

    /// Everything the file may take.
    public var totalBytes: Int { fastBytes + ramBytes }

    public static func of(spec: ModelSpec, target: Target, context: Int, cacheType: QuantType = .f16) -> FitBudget {
        let kv = KVCache.bytes(spec, context: context, cacheType: cacheType)
        var fast = 0.0, ram = 0.0
        if let unified = target.unified {
            fast = unified.memory * (unified.gpuShare ?? Efficiency.unifiedUsable) - Efficiency.deviceReserve(spec) - Double(kv)
        } else if !target.gpus.isEmpty {
            fast = target.gpus.reduce(0) { $0 + max($1.memory - Efficiency.deviceReserve(spec), 0) } - Double(kv)
            ram = (target.memory?.capacity ?? 0) - Efficiency.systemReserve
        } else {
            ram = (target.memory?.capacity ?? 0) - Efficiency.systemReserve - Double(kv)
        }
        // (Clamped: a target of thousands of 10-PB parts must not overflow Int.)
        func bytes(_ value: Double) -> Int { Int(min(max(value, 0), 4e18)) }
        return FitBudget(
            target: target.name, context: context, cacheType: cacheType, kvBytes: kv, fastBytes: bytes(fast), ramBytes: bytes(ram),
            unified: target.unified != nil)
    }
}
