// Where a recipe's bytes go on a target and how fast it decodes (formats/hardware/README.md):
// the fastest tier first takes what every token reads (always-on tensors) and the KV cache, then routed experts
// layer by layer (llama.cpp's --n-cpu-moe), the rest goes to system RAM, and what RAM cannot hold is streamed
// from disk (mmap). Decode time per token = Σ over tiers of bytes read there ÷ (bandwidth × efficiency).
import Foundation
import ModelCatalog
import QuantKernels

public enum Engine: String, Sendable, CaseIterable {
    /// llama.cpp: one copy of the weights; on a multi-socket machine RAM bandwidth is effectively one socket's.
    case llamaCpp = "llama.cpp"
    /// KTransformers: experts duplicated per NUMA node, every socket's bandwidth used (and RAM needed × sockets).
    case ktransformers
}

/// Efficiency factors (share of theoretical bandwidth a decode step achieves), calibrated in formats/hardware/README.md.
public enum Efficiency {
    public static let gpu = 0.9
    public static let unified = 0.8
    /// Fixed decode time per layer per token on a GPU (CUDA kernel launches and syncs of one MoE layer), seconds.
    public static let gpuLayerOverhead = 47e-6
    /// The same on a unified machine without a measured figure of its own (targets.json gives Apple's).
    public static let unifiedLayerOverhead = 30e-6
    /// System RAM without a measured factor of its own (targets.json gives one per memory configuration).
    public static let systemMemory = 0.35
    public static let disk = 0.8
    /// Prompt processing: share of the device's dense FP16 tensor FLOP/s that llama.cpp's batched matmuls reach.
    public static let compute = 0.25
    /// Share of the PCIe link's bandwidth a weight upload reaches.
    public static let link = 0.8
    /// CPU prompt processing when the memory configuration states no `cpu_flops` (assumption).
    public static let cpuFlops = 0.3e12
    /// llama.cpp's default --fit margin per device (1024 MiB).
    public static let fitMargin = 1_073_741_824.0
    /// The GPU runtime's own context per device (CUDA / ROCm / Metal; assumption: 512 MiB).
    public static let runtimeContext = 536_870_912.0
    /// Per device: the --fit margin, the runtime context, and the compute buffer at the default micro-batch (`ComputeBuffer`); with several
    /// GPUs llama.cpp's pipeline parallelism keeps 4 copies of it (GGML_SCHED_MAX_COPIES).
    public static func deviceReserve(_ spec: ModelSpec, devices: Int = 1) -> Double {
        fitMargin + runtimeContext + Double(ComputeBuffer.bytes(spec) * (devices > 1 ? ComputeBuffer.pipelineCopies : 1))
    }
    /// System RAM kept by the OS and the runtime (assumption: 4 GB).
    public static let systemReserve = 4e9
    /// Unified-memory machines: the share of memory the GPU may use (macOS default wired limit ≈ 75 %).
    public static let unifiedUsable = 0.75
}

public struct Plan: Sendable {
    public enum Verdict: String, Sendable { case fits, fitsWithDiskStreaming = "fits with disk streaming", doesNotFit = "does not fit" }
    public let target: String
    public let recipe: String
    public let verdict: Verdict
    public let fastBytes: Double, ramBytes: Double, diskBytes: Double
    /// Free bytes left in the tier that limits the verdict (negative: short by that much).
    public let margin: Double
    public let tokensPerSecond: Double
    /// Prompt processing estimate (llama.cpp, 512-token micro-batches), tokens/s.
    public let prefillTokensPerSecond: Double
    /// Experts of the first `cpuMoeLayers` layers on the CPU (llama.cpp --n-cpu-moe).
    public let cpuMoeLayers: Int
    public let command: String
    /// Bytes placed on each GPU or unified device (several GPUs: their layer ranges and expert layers).
    public var devices: [DeviceBytes] = []
    /// Advice that goes with the command on this kind of machine (wired limits, NUMA, …).
    public var advice: [String] = []
}

public struct DeviceBytes: Sendable, Equatable {
    public let name: String
    public let bytes: Double
}

public enum Planner {
    /// Places `footprint` (a recipe of `spec`) on `target` with `context` tokens of F16 KV cache.
    public static func plan(
        _ footprint: Footprint, spec: ModelSpec, target: Target, context: Int, engine: Engine = .llamaCpp,
        cacheType: QuantType = .f16, file: String = "MODEL.gguf", routing: RoutingProfile? = nil
    ) -> Plan {
        let kv = Double(KVCache.bytes(spec, context: context, cacheType: cacheType))
        let alwaysOn = Double(footprint.alwaysOnBytes), routed = Double(footprint.routedExpertBytes)
        let moeLayers = max(footprint.routedExpertLayers, 1)
        let perLayerExperts = routed / Double(moeLayers)
        let firstMoE = (0..<spec.layerCount).first { spec.isMoELayer($0) } ?? 0
        // Bytes a token reads: always-on (one embedding row), top-k of each routed layer, and the whole KV cache.
        // Routed bytes are read in proportion to where they sit (`routedShare` of each tier's experts).
        let routedShare = routed > 0 ? Double(footprint.activeRoutedBytesPerToken) / routed : 0
        let alwaysOnRead = Double(footprint.activeBytesPerToken - footprint.activeRoutedBytesPerToken)
        var fastCapacity = 0.0, fastBandwidth = 0.0, fastEfficiency = target.gpus.first?.decodeEfficiency ?? Efficiency.gpu
        // Fixed time per token: every layer's kernel launches on the device that runs the graph (none counted on a CPU).
        var overhead = Double(spec.layerCount) * (target.gpus.first.map { $0.layerOverhead ?? Efficiency.gpuLayerOverhead } ?? 0)
        if let unified = target.unified {
            fastCapacity = unified.memory * (unified.gpuShare ?? Efficiency.unifiedUsable) - Efficiency.deviceReserve(spec)
            fastBandwidth = unified.bandwidth
            fastEfficiency = unified.decodeEfficiency ?? Efficiency.unified
            overhead = Double(spec.layerCount) * (unified.layerOverhead ?? Efficiency.unifiedLayerOverhead)
        } else if !target.gpus.isEmpty {
            // At most what the cards hold with one compute buffer each (several cards with every expert on them keep
            // four: `GPUSplit` decides).
            fastCapacity = target.gpus.reduce(0) { $0 + max($1.memory - Efficiency.deviceReserve(spec), 0) }
            // Layers split across GPUs run one after another: a token sees one GPU's bandwidth at a time.
            fastBandwidth = target.gpus.filter { $0.memory > Efficiency.deviceReserve(spec) }.map(\.bandwidth).min() ?? 0
        }
        let sockets = Double(target.memory?.sockets ?? 1)
        let ramCopies = engine == .ktransformers ? sockets : 1
        let ramCapacity = target.memory?.capacity ?? 0
        let ramBandwidth = (target.memory?.bandwidth ?? 0) / (engine == .ktransformers ? 1 : sockets)
        // Fill the fast tier: always-on + KV first, then whole layers of experts.
        var fast = 0.0, ram = 0.0
        var alwaysOnInFast = min(alwaysOn + kv, max(fastCapacity, 0))
        if target.unified == nil && target.gpus.isEmpty { alwaysOnInFast = 0 }
        // GPUs that cannot hold every layer's always-on tensors and KV cache take whole layers of them (`-ngl N`, the
        // last N blocks), and every expert stays in RAM.
        let blocks = spec.layerCount + max(moeLayers - spec.moeLayerCount, 0)
        var gpuLayers: Int?
        if target.unified == nil, !target.gpus.isEmpty, alwaysOn + kv > alwaysOnInFast {
            let perBlock = (alwaysOn + kv) / Double(max(blocks, 1))
            let layers = min(Int(max(fastCapacity, 0) / perBlock), blocks)
            gpuLayers = layers
            alwaysOnInFast = Double(layers) * perBlock
        }
        fast += alwaysOnInFast
        let alwaysOnInRam = alwaysOn + kv - alwaysOnInFast
        let freeFast = max(fastCapacity - fast, 0)
        var expertLayersFast = perLayerExperts > 0 && gpuLayers == nil ? min(moeLayers, Int(freeFast / perLayerExperts)) : 0
        // A unified pool has no per-layer CPU/GPU split: experts fill it by bytes, not whole layers.
        if target.unified != nil, routed <= freeFast { expertLayersFast = moeLayers }
        // Several GPUs: each holds its own layer range, and the experts that fit there (no pooling across cards).
        let split =
            target.gpus.count > 1 && gpuLayers == nil
            ? GPUSplit(
                spec: spec, gpus: target.gpus, alwaysOnAndKV: alwaysOnInFast, perLayerExperts: perLayerExperts,
                moeLayerCount: moeLayers)
            : nil
        if let split {
            expertLayersFast = split.expertLayersOnGPUs
            fastBandwidth = zip(target.gpus, split.layerCounts).filter { $0.1 > 0 }.map(\.0.bandwidth).min() ?? fastBandwidth
        }
        fast += Double(expertLayersFast) * perLayerExperts
        // (All layers placed: exactly nothing left, not a rounding remainder that would count as streamed from disk.)
        let expertsLeft = expertLayersFast == moeLayers ? 0 : routed - Double(expertLayersFast) * perLayerExperts
        ram = alwaysOnInRam + expertsLeft * ramCopies
        let ramUsable = max(ramCapacity - Efficiency.systemReserve, 0)
        let disk = max(ram - ramUsable, 0) / ramCopies
        let ramHeld = ram - disk * ramCopies
        // Time per token.
        let expertsOnDiskShare = routed > 0 ? disk / routed : 0
        let alwaysShareFast = alwaysOn + kv > 0 ? alwaysOnInFast / (alwaysOn + kv) : 0
        let fastRead = alwaysShareFast * (alwaysOnRead + kv) + Double(expertLayersFast) * perLayerExperts * routedShare
        // Of the experts outside the fast tier, RAM (the page cache) holds the hottest: with routing statistics they
        // take more than their byte share of the reads, and disk serves the cold tail.
        let heldShare = expertsLeft > 0 ? max(expertsLeft - disk, 0) / expertsLeft : 1
        let hotShare = routing?.mass(ofHottest: heldShare) ?? heldShare
        let ramRead = (1 - alwaysShareFast) * (alwaysOnRead + kv) + expertsLeft * routedShare * hotShare
        let diskRead = expertsLeft * routedShare * (1 - hotShare)
        var seconds = 0.0
        if fastRead > 0 { seconds += fastRead / max(fastBandwidth * fastEfficiency, 1) }
        if ramRead > 0 { seconds += ramRead / max(ramBandwidth * (target.memory?.efficiency ?? Efficiency.systemMemory), 1) }
        if diskRead > 0 { seconds += diskRead / max((target.disk?.bandwidth ?? 7e9) * Efficiency.disk, 1) }
        if seconds > 0 { seconds += overhead }
        let verdict: Plan.Verdict
        let margin: Double
        if alwaysOnInRam > 0 && target.memory == nil {
            verdict = .doesNotFit
            margin = -alwaysOnInRam
        } else if disk > 0 {
            verdict = expertsOnDiskShare <= 1 && alwaysOnInRam <= ramUsable ? .fitsWithDiskStreaming : .doesNotFit
            margin = ramUsable - ram
        } else {
            verdict = .fits
            margin = (ramCapacity > 0 && expertsLeft > 0) ? ramUsable - ramHeld : fastCapacity - fast
        }
        // A unified machine never splits experts between CPU and GPU: what its GPU share cannot hold pages in from disk.
        let cpuMoe = target.unified != nil ? 0 : moeLayers - expertLayersFast
        let (command, advice) = Advice.command(
            target: target, engine: engine, file: file, context: context, cacheType: cacheType, split: split, gpuLayers: gpuLayers,
            blocks: blocks, cpuMoe: cpuMoe, moeLayers: moeLayers, firstMoE: firstMoE, spillsBeyondFastTier: disk > 0 || expertsLeft > 0)
        let hostWeights = max(expertsLeft, 0) + max(alwaysOnInRam - kv, 0)  // weights not in the fast tier (disk-streamed ones too)
        let prefill = prefillRate(footprint, target: target, ramResident: hostWeights, diskBytes: disk)
        return Plan(
            target: target.name, recipe: footprint.label, verdict: verdict, fastBytes: fast, ramBytes: ramHeld, diskBytes: disk,
            margin: margin, tokensPerSecond: seconds > 0 ? 1 / seconds : 0, prefillTokensPerSecond: verdict == .doesNotFit ? 0 : prefill,
            cpuMoeLayers: cpuMoe, command: command,
            devices: split?.devices
                ?? (fast > 0
                    ? [DeviceBytes(name: (target.unified?.name ?? target.gpus.first?.name ?? "fast tier") + "#0", bytes: fast)] : []),
            advice: advice)
    }

    /// Prompt processing in 512-token micro-batches (llama.cpp's default `-ub`). With a GPU, every matmul of a
    /// micro-batch runs there (llama.cpp uploads RAM-resident weights for batches of 32 tokens or more), so a
    /// micro-batch costs its FLOPs at the GPU's rate plus one upload of the RAM-resident bytes over PCIe; a
    /// unified machine computes in place; a CPU-only machine computes at its configuration's `cpu_flops`. Bytes
    /// streamed from disk are read once per micro-batch.
    static func prefillRate(_ footprint: Footprint, target: Target, ramResident: Double, diskBytes: Double) -> Double {
        let batch = Double(KVCache.defaultMicroBatch)
        let flops = batch * 2 * Double(footprint.activeParametersPerToken)
        var seconds = 0.0
        if let unified = target.unified {
            seconds = unified.flops.map { flops / ($0 * (unified.computeEfficiency ?? Efficiency.compute)) } ?? flops / Efficiency.cpuFlops
        } else if let gpu = target.gpus.first {
            // Without a stated throughput a GPU is taken as 100 TFLOPS (assumption).
            seconds = flops / ((gpu.flops ?? 1e14) * (gpu.computeEfficiency ?? Efficiency.compute))
            seconds += ramResident / ((gpu.link ?? 32e9) * Efficiency.link)
        } else {
            seconds = flops / (target.memory?.cpuFlops ?? Efficiency.cpuFlops)
        }
        seconds += diskBytes / ((target.disk?.bandwidth ?? 7e9) * Efficiency.disk)
        return seconds > 0 ? batch / seconds : 0
    }
}
