// Placement per kind of machine (formats/hardware/README.md, "Placement advice"): several GPUs each hold a layer range
// and the experts of that range that fit on that card (explicit `-ts` and `-ot` rules, not `--n-cpu-moe` with a
// proportional split, which leaves every GPU-resident expert where the layer split puts it); a unified machine is one
// pool (no CPU/GPU expert split); a multi-socket CPU gets NUMA flags.
import Foundation
import ModelCatalog
import QuantKernels

/// Layers of a model over several GPUs, as llama.cpp's `--split-mode layer` with `-ts` places them.
struct GPUSplit: Sendable {
    /// Blocks per device (the last device with any also holds the output layer).
    let layerCounts: [Int]
    /// MoE layers whose experts stay in system RAM (`-ot …=CPU`).
    let cpuExpertLayers: [Int]
    let expertLayersOnGPUs: Int
    let devices: [DeviceBytes]

    /// `alwaysOnAndKV`: the bytes every layer shares out (always-on tensors and KV cache), spread evenly over the
    /// blocks; `perLayerExperts`: one MoE layer's routed experts. With every expert on the cards llama.cpp runs them as a
    /// pipeline and keeps four compute buffers per card; with tensor overrides (`-ot`) it keeps one.
    init(spec: ModelSpec, gpus: [Device], alwaysOnAndKV: Double, perLayerExperts: Double, moeLayerCount: Int) {
        let pipelined = GPUSplit(
            spec: spec, gpus: gpus, alwaysOnAndKV: alwaysOnAndKV, perLayerExperts: perLayerExperts, moeLayerCount: moeLayerCount,
            reserve: Efficiency.deviceReserve(spec, devices: gpus.count), keepOneOnCPU: false)
        if pipelined.cpuExpertLayers.isEmpty {
            self = pipelined
        } else {
            // Overrides switch pipelining off: one buffer per card, and at least one expert layer stays overridden.
            self = GPUSplit(
                spec: spec, gpus: gpus, alwaysOnAndKV: alwaysOnAndKV, perLayerExperts: perLayerExperts, moeLayerCount: moeLayerCount,
                reserve: Efficiency.deviceReserve(spec), keepOneOnCPU: true)
        }
    }

    private init(
        spec: ModelSpec, gpus: [Device], alwaysOnAndKV: Double, perLayerExperts: Double, moeLayerCount: Int, reserve: Double,
        keepOneOnCPU: Bool
    ) {
        // Blocks as llama.cpp counts them: an MTP layer the file holds (GLM-4.5) is one more, after the last layer.
        var moe = (0..<spec.layerCount).filter { spec.isMoELayer($0) }
        if moeLayerCount > moe.count { moe += (spec.layerCount..<(spec.layerCount + moeLayerCount - moe.count)) }
        let blocks = spec.layerCount + max(moeLayerCount - spec.moeLayerCount, 0)
        let capacities = gpus.map { max($0.memory - reserve, 0) }
        let total = max(capacities.reduce(0, +), 1)
        // Layer counts proportional to capacity (largest remainder); a card with no room gets none.
        let exact = capacities.map { Double(blocks) * $0 / total }
        var counts = exact.map { Int($0) }
        let byRemainder = exact.indices.filter { capacities[$0] > 0 }
            .sorted { exact[$0] - Double(counts[$0]) > exact[$1] - Double(counts[$1]) }
        for i in byRemainder.prefix(blocks - counts.reduce(0, +)) { counts[i] += 1 }
        layerCounts = counts
        let perLayerShared = alwaysOnAndKV / Double(max(blocks, 1))
        var start = 0, onGPUs = 0
        var cpu: [Int] = [], devices: [DeviceBytes] = []
        for (d, count) in counts.enumerated() {
            let mine = moe.filter { $0 >= start && $0 < start + count }
            let shared = perLayerShared * Double(count)
            let free = max(capacities[d] - shared, 0)
            let fitting = perLayerExperts > 0 ? min(mine.count, Int(free / perLayerExperts)) : mine.count
            onGPUs += fitting
            cpu += mine.dropFirst(fitting)
            devices.append(DeviceBytes(name: "\(gpus[d].name)#\(d)", bytes: shared + Double(fitting) * perLayerExperts))
            start += count
        }
        if keepOneOnCPU, cpu.isEmpty, let last = moe.last, let d = devices.indices.last(where: { counts[$0] > 0 }) {
            cpu = [last]
            onGPUs -= 1
            devices[d] = DeviceBytes(name: devices[d].name, bytes: devices[d].bytes - perLayerExperts)
        }
        cpuExpertLayers = cpu
        expertLayersOnGPUs = onGPUs
        self.devices = devices
    }

    /// `-ts` as layer counts: llama.cpp splits `n_layer + 1` offloaded layers (the output counts as one, on the last
    /// device) by the cumulative proportions, so counts that sum to that number give exactly these ranges.
    var tensorSplit: String {
        var counts = layerCounts
        if let last = counts.indices.last(where: { counts[$0] > 0 }) { counts[last] += 1 }
        return counts.map(String.init).joined(separator: ",")
    }
}

enum Advice {
    /// The llama.cpp command and the notes that go with it on `target`. `gpuLayers`: GPUs that cannot hold every
    /// block's always-on tensors and KV cache take the last N blocks (`-ngl N`).
    static func command(
        target: Target, engine: Engine, file: String, context: Int, cacheType: QuantType, split: GPUSplit?, gpuLayers: Int?,
        blocks: Int, cpuMoe: Int, moeLayers: Int, firstMoE: Int, spillsBeyondFastTier: Bool
    ) -> (String, [String]) {
        var command = "llama-cli -m \(file) -c \(context)"
        var notes: [String] = []
        if engine == .ktransformers {
            notes.append(
                """
                tokens/s are for KTransformers (experts in RAM, once per socket); the command is llama.cpp's for the same \
                placement, KTransformers takes the GGUF directory with its own launcher
                """)
        }
        if let unified = target.unified {
            // One pool: every layer on the GPU; experts the GPU's share cannot hold page in through mmap.
            command += " -ngl 99"
            // Held whole: read it in rather than mapping it (loads 10x faster on DGX Spark and Macs; ROCm on Strix Halo
            // hangs mapping files over 20 GB). A file that spills must stay mapped to page in.
            if !spillsBeyondFastTier { command += " --no-mmap" }
            if spillsBeyondFastTier {
                let share = Int(((unified.gpuShare ?? Efficiency.unifiedUsable) * 100).rounded())
                notes.append(
                    "\(unified.name): the file exceeds the GPU's share of memory (\(share) %); "
                        + (unified.shareAdvice ?? "raise it if the platform allows, or the rest is paged in from disk"))
            }
        } else if let gpuLayers {
            // Not even the always-on tensors fit: the last N blocks on the GPUs, every expert in RAM.
            command += " -ngl \(gpuLayers)"
            if moeLayers > 0 { command += " -ot \(GGUFTensorName.routedExpertsPattern())=CPU" }
            notes.append(
                """
                the always-on tensors and KV cache of all \(blocks) blocks exceed GPU memory: \(gpuLayers) blocks on the GPU\
                \(target.gpus.count > 1 ? "s" : ""), the rest and every expert in RAM (a smaller --context or --cache-type q8_0 \
                frees room)
                """)
        } else if let split {
            command += " -ngl 99 -ts \(split.tensorSplit)"
            if !split.cpuExpertLayers.isEmpty {
                let pattern =
                    split.cpuExpertLayers.count == moeLayers
                    ? GGUFTensorName.routedExpertsPattern() : GGUFTensorName.routedExpertsPattern(layers: split.cpuExpertLayers)
                command += " -ot \"\(pattern)=CPU\""
            }
            let ranges = zip(target.gpus, split.layerCounts).enumerated().map { "\($0.element.0.name)#\($0.offset): \($0.element.1)" }
            notes.append(
                "blocks split " + ranges.joined(separator: ", ") + " (the output layer on the last card with any)"
                    + (split.cpuExpertLayers.isEmpty ? "" : "; the experts of the layers -ot names stay in RAM"))
        } else if !target.gpus.isEmpty {
            command += " -ngl 99"
            if cpuMoe == moeLayers {
                command += " -ot \(GGUFTensorName.routedExpertsPattern())=CPU"
            } else if cpuMoe > 0 {
                command += " --n-cpu-moe \(firstMoE + cpuMoe)"
            }
        }
        if engine == .llamaCpp, let memory = target.memory, memory.sockets > 1 {
            command += " --numa distribute"
            notes.append(
                """
                \(memory.sockets) sockets: `--numa distribute` spreads threads and pages over the nodes; turn off automatic \
                NUMA balancing (`echo 0 | sudo tee /proc/sys/kernel/numa_balancing`) and drop the page cache before the first \
                run so the weights are read in under the new policy
                """)
        }
        if cacheType != .f16 { command += " -fa on -ctk \(cacheType.rawValue.lowercased()) -ctv \(cacheType.rawValue.lowercased())" }
        return (command, notes)
    }
}

/// What to run on one target: the largest recipe the fast tier holds alone, and the largest held without disk streaming.
public struct Recommendation: Sendable {
    public let target: String
    public let inFastMemory: Plan?
    public let withRAM: Plan?
    /// The plan whose command is shown: the pick with RAM, else the smallest recipe's (it comes closest).
    public let shown: Plan

    /// `plans[recipe][target]`, `sizes[recipe]` the file bytes: one recommendation per target.
    public static func picks(_ plans: [[Plan]], sizes: [Int]) -> [Recommendation] {
        guard let first = plans.first else { return [] }
        // Largest file first, whatever order the recipes were given in.
        let order = sizes.indices.sorted { sizes[$0] > sizes[$1] }
        return first.indices.map { t in
            let column = order.map { plans[$0][t] }
            let fast = column.first { $0.verdict == .fits && $0.ramBytes == 0 && $0.diskBytes == 0 && $0.fastBytes > 0 }
            let ram = column.first { $0.verdict == .fits }
            return Recommendation(target: first[t].target, inFastMemory: fast, withRAM: ram, shown: ram ?? column.last ?? first[t])
        }
    }
}
