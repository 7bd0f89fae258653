// Hardware targets as data (formats/hardware/targets.json, bundled as a resource) and composite targets by name:
// "rtx4090+256gb" (a GPU and 256 GB of dual-channel DDR5-5600), "2x3090+128gb-ddr4", "8xh200",
// "m3-ultra-512gb", "rtx4090+512gb-2x8ch-ddr5-4800+nvme-gen5", "384gb-12ch-ddr5-4800" (CPU only).
import Foundation
import TensorFormats

public enum TargetError: Error, Sendable, CustomStringConvertible {
    case unknown(String, known: [String])
    case catalog(String)
    /// A --target name that does not describe one machine.
    case target(String)
    public var description: String {
        switch self {
        case let .unknown(part, known):
            "unknown hardware \"\(part)\" (devices: \(known.joined(separator: ", ")); system memory: <N>gb[-CONFIG])"
        case .catalog(let what): "hardware catalog: \(what)"
        case .target(let what): "--target \(what)"
        }
    }
}

public struct Device: Sendable, Equatable {
    public enum Kind: String, Sendable { case gpu, unified, disk }
    public let name: String
    public let kind: Kind
    public let memory: Double
    public let bandwidth: Double
    public let source: String
    /// Dense FP16/BF16 tensor throughput (FLOP/s), for the prefill estimate.
    public var flops: Double? = nil
    /// Host link (PCIe x16) bandwidth per direction, bytes/s: what prompt processing pays to bring RAM-resident
    /// weights to the GPU.
    public var link: Double? = nil
    /// Share of `flops` llama.cpp's prompt processing reaches on this device (default `Efficiency.compute`).
    public var computeEfficiency: Double? = nil
    /// Share of `bandwidth` a decode step reaches on this device (default by kind: `Efficiency.gpu` / `.unified`).
    public var decodeEfficiency: Double? = nil
    /// Fixed time per layer per decoded token (kernel launches, synchronisation), seconds (default by kind).
    public var layerOverhead: Double? = nil
    /// Unified machines: the share of memory the GPU may use by default, and how to raise it.
    public var gpuShare: Double? = nil
    public var shareAdvice: String? = nil
}

public struct SystemMemory: Sendable, Equatable {
    public let name: String
    public let capacity: Double
    public let bandwidth: Double
    public let sockets: Int
    public let source: String
    /// Share of `bandwidth` a decode step reaches (default `Efficiency.systemMemory`).
    public var efficiency: Double? = nil
    /// Effective CPU matmul throughput (FLOP/s) of llama.cpp's prompt processing on this machine class.
    public var cpuFlops: Double? = nil
}

public struct Target: Sendable {
    public let name: String
    public var gpus: [Device] = []
    public var unified: Device?
    public var memory: SystemMemory?
    public var disk: Device?
}

public struct HardwareCatalog: Sendable {
    public let devices: [Device]
    public let memories: [SystemMemory]

    /// The bundled catalog (formats/hardware/targets.json, shipped as this module's resource).
    public static func bundled() throws -> HardwareCatalog {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/targets.json")
        guard let url = ResourceLocator.url(bundle: "moeq_HardwarePlanner", item: "targets.json", sourceFallback: source) else {
            throw TargetError.catalog("targets.json (moeq_HardwarePlanner.resources) is neither beside the binary nor in $MOEQ_RESOURCES")
        }
        return try HardwareCatalog(file: url.path)
    }

    /// This catalog with a user's file (same schema as targets.json) added; its entries replace same-named ones.
    public func adding(file path: String) throws -> HardwareCatalog {
        let extra = try HardwareCatalog(file: path)
        let names = Set(extra.devices.map(\.name)), memoryNames = Set(extra.memories.map(\.name))
        return HardwareCatalog(
            devices: devices.filter { !names.contains($0.name) } + extra.devices,
            memories: memories.filter { !memoryNames.contains($0.name) } + extra.memories)
    }

    init(devices: [Device], memories: [SystemMemory]) {
        self.devices = devices
        self.memories = memories
    }

    /// targets.json as written: unknown keys refused, every number range-checked.
    struct Document: Decodable {
        let format: String
        let note: String?
        let devices: [DeviceEntry]?
        let systemMemory: [MemoryEntry]?
        let links: [Link]?
        enum CodingKeys: String, CodingKey, CaseIterable { case format, note, devices, links, systemMemory = "system_memory" }
        struct DeviceEntry: Decodable {
            let name: String, kind: String, memory: Double, bandwidth: Double, source: String
            let flops: Double?, flopsSource: String?, link: Double?, computeEfficiency: Double?, computeEfficiencySource: String?
            let decodeEfficiency: Double?, decodeEfficiencySource: String?, layerOverhead: Double?, layerOverheadSource: String?
            let gpuShare: Double?, gpuShareSource: String?, shareAdvice: String?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case name, kind, memory, bandwidth, source, flops, link
                case flopsSource = "flops_source", computeEfficiency = "compute_efficiency", computeEfficiencySource =
                    "compute_efficiency_source"
                case decodeEfficiency = "decode_efficiency", decodeEfficiencySource = "decode_efficiency_source"
                case layerOverhead = "layer_overhead", layerOverheadSource = "layer_overhead_source"
                case gpuShare = "gpu_share", gpuShareSource = "gpu_share_source", shareAdvice = "share_advice"
            }
        }
        struct MemoryEntry: Decodable {
            let name: String, sockets: Int, bandwidth: Double, source: String
            let efficiency: Double?, cpuFlops: Double?
            enum CodingKeys: String, CodingKey, CaseIterable { case name, sockets, bandwidth, source, efficiency, cpuFlops = "cpu_flops" }
        }
        struct Link: Decodable {
            let name: String, bandwidth: Double, source: String
            enum CodingKeys: String, CodingKey, CaseIterable { case name, bandwidth, source }
        }
    }

    /// Reads a catalog file; errors name the file and the entry.
    public init(file path: String) throws {
        let document: Document
        do { document = try StrictJSON.decode(Document.self, file: path) } catch let error as JSONDecodingError {
            throw TargetError.catalog("\(path): \(error.path): \(error.reason)")
        } catch let error as JSONError {
            throw TargetError.catalog(error.description)
        }
        func fail(_ what: String) -> TargetError { .catalog("\(path): \(what)") }
        guard document.format == "moeq hardware targets 1" else { throw fail("format must be \"moeq hardware targets 1\"") }
        func check(_ value: Double?, _ range: ClosedRange<Double>, _ what: String) throws {
            if let value, !(value.isFinite && range.contains(value)) {
                throw fail("\(what) \(value) is outside \(range.lowerBound)…\(range.upperBound)")
            }
        }
        devices = try (document.devices ?? []).enumerated().map { i, d in
            guard let kind = Device.Kind(rawValue: d.kind) else {
                throw fail("devices[\(i)] (\(d.name)): kind must be gpu, unified or disk")
            }
            try check(d.memory, 1e6...1e16, "devices[\(i)] (\(d.name)).memory")
            try check(d.bandwidth, 1e6...1e15, "devices[\(i)] (\(d.name)).bandwidth")
            try check(d.flops, 1e6...1e18, "devices[\(i)] (\(d.name)).flops")
            try check(d.link, 1e6...1e13, "devices[\(i)] (\(d.name)).link")
            try check(d.computeEfficiency, 1e-4...1, "devices[\(i)] (\(d.name)).compute_efficiency")
            try check(d.decodeEfficiency, 1e-4...1, "devices[\(i)] (\(d.name)).decode_efficiency")
            try check(d.layerOverhead, 0...0.1, "devices[\(i)] (\(d.name)).layer_overhead")
            try check(d.gpuShare, 0.05...1, "devices[\(i)] (\(d.name)).gpu_share")
            return Device(
                name: d.name, kind: kind, memory: d.memory, bandwidth: d.bandwidth, source: d.source,
                flops: d.flops, link: d.link, computeEfficiency: d.computeEfficiency, decodeEfficiency: d.decodeEfficiency,
                layerOverhead: d.layerOverhead, gpuShare: d.gpuShare, shareAdvice: d.shareAdvice)
        }
        memories = try (document.systemMemory ?? []).enumerated().map { i, m in
            guard (1...16).contains(m.sockets) else { throw fail("system_memory[\(i)] (\(m.name)).sockets \(m.sockets) is outside 1…16") }
            try check(m.bandwidth, 1e6...1e15, "system_memory[\(i)] (\(m.name)).bandwidth")
            try check(m.efficiency, 1e-4...1, "system_memory[\(i)] (\(m.name)).efficiency")
            try check(m.cpuFlops, 1e6...1e18, "system_memory[\(i)] (\(m.name)).cpu_flops")
            return SystemMemory(
                name: m.name, capacity: 0, bandwidth: m.bandwidth, sockets: m.sockets, source: m.source,
                efficiency: m.efficiency, cpuFlops: m.cpuFlops)
        }
    }

    /// A composite target from its name: parts joined by "+", each a device ("rtx4090", "2x3090" → two RTX 3090,
    /// "8xh200"), a unified-memory machine, a disk ("nvme-gen5"), or system memory "<N>gb[-CONFIG]" (CONFIG from
    /// the catalog's system_memory; default dual-channel DDR5-5600). Without a disk part, NVMe Gen4 is assumed.
    public func target(_ name: String) throws -> Target {
        var target = Target(name: name)
        let parts = name.lowercased().split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        guard !name.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else {
            throw TargetError.target("\"\(name)\": a target is parts joined by +, none empty (e.g. rtx4090+256gb)")
        }
        // One system memory, one unified-memory machine and one disk per target: a second would silently replace the
        // first, so it is refused (GPUs add up).
        var single: [String: String] = [:]
        func once(_ kind: String, _ raw: String, count: Int) throws {
            guard count == 1 || kind == "system memory" else {
                throw TargetError.target("\"\(raw)\": N× applies to GPUs and memory; a target has one \(kind)")
            }
            if let first = single[kind] {
                throw TargetError.target(
                    "\"\(raw)\": this target already has a \(kind) (\"\(first)\"); give one \(kind) part (its total size)")
            }
            single[kind] = raw
        }
        for raw in parts {
            if raw.contains(":") {
                let (kind, count) = try target.add(inline: raw)
                if kind != .gpu {
                    try once(kind == .unified ? "unified-memory machine" : kind == .disk ? "disk" : "system memory", raw, count: count)
                }
                continue
            }
            var part = raw, count = 1
            if let x = part.firstIndex(of: "x"), let n = Int(part[..<x]) {
                guard (1...Target.maximumDevices).contains(n) else {
                    throw TargetError.target("\"\(raw)\": \(n) devices; at most \(Target.maximumDevices)")
                }
                count = n
                part = String(part[part.index(after: x)...])
            }
            let aliases = ["3090": "rtx3090", "4090": "rtx4090", "5090": "rtx5090", "pro6000": "rtx-pro-6000"]
            part = aliases[part] ?? part
            if let device = devices.first(where: { $0.name == part }) {
                switch device.kind {
                case .gpu: target.gpus += Array(repeating: device, count: count)
                case .unified:
                    try once("unified-memory machine", raw, count: count)
                    target.unified = device
                case .disk:
                    try once("disk", raw, count: count)
                    target.disk = device
                }
                continue
            }
            if let gb = part.firstRange(of: "gb"), let size = Double(part[..<gb.lowerBound]) {
                guard size.isFinite, size > 0, size <= 1e7 else {
                    throw TargetError.target("\"\(raw)\": \(size) GB of memory is not in (0, 1e7]")
                }
                let config = String(part[gb.upperBound...]).trimmingCharacters(in: CharacterSet(charactersIn: "-"))
                guard let memory = memories.first(where: { $0.name == (config.isEmpty ? "ddr5" : config) }) else {
                    throw TargetError.unknown(raw, known: devices.map(\.name) + memories.map { "<N>gb-\($0.name)" })
                }
                try once("system memory", raw, count: count)
                target.memory = SystemMemory(
                    name: memory.name, capacity: size * 1e9 * Double(count), bandwidth: memory.bandwidth,
                    sockets: memory.sockets, source: memory.source, efficiency: memory.efficiency, cpuFlops: memory.cpuFlops)
                continue
            }
            throw TargetError.unknown(raw, known: devices.map(\.name) + memories.map { "<N>gb-\($0.name)" })
        }
        if target.disk == nil { target.disk = devices.first { $0.name == "nvme-gen4" } }
        try target.checkOneMachine()
        return target
    }
}

extension Target {
    /// More devices of one kind than any machine or rack moeq plans for.
    public static let maximumDevices = 4096
    /// llama.cpp's LLAMA_MAX_DEVICES: `-ts` and the layer split take at most 16 GPUs.
    public static let maximumGPUs = 16
    /// Memory of one kind on one target, at most 10 PB (sizes stay exact integers in the JSON).
    public static let maximumBytes = 1e16

    /// Refuses what no one machine is: a unified-memory machine with separate RAM or discrete GPUs (its memory is the
    /// RAM and its GPU is built in), more GPUs than llama.cpp splits over, more memory than sizes can say.
    func checkOneMachine() throws {
        if let unified {
            if memory != nil || !gpus.isEmpty {
                throw TargetError.target(
                    "\"\(name)\": \(unified.name) is a unified-memory machine: its memory is the RAM and its GPU built in; "
                        + "give it without RAM or GPU parts")
            }
        }
        guard gpus.count <= Target.maximumGPUs else {
            throw TargetError.target(
                "\"\(name)\": \(gpus.count) GPUs; llama.cpp splits a model over at most \(Target.maximumGPUs) devices (LLAMA_MAX_DEVICES)")
        }
        let gpuBytes = gpus.reduce(0) { $0 + $1.memory }
        guard gpuBytes <= Target.maximumBytes, (memory?.capacity ?? 0) <= Target.maximumBytes else {
            throw TargetError.target("\"\(name)\": more than 10 PB of memory of one kind")
        }
    }

    /// Hardware given on the command line: `KIND:GB:GBPS` with KIND gpu, unified, ram or disk, capacity in GB and
    /// bandwidth in GB/s (e.g. `gpu:16:448+ram:64:60`, `2xgpu:24:936`). No FLOP/s are known for these, so prefill
    /// uses the planner's defaults.
    /// Returns the part's kind (`nil` kind for ram) and its N× count.
    mutating func add(inline raw: String) throws -> (kind: Device.Kind?, count: Int) {
        var text = Substring(raw), count = 1
        if let x = text.firstIndex(of: "x"), let n = Int(text[..<x]) {
            guard (1...Target.maximumDevices).contains(n) else {
                throw TargetError.target("\"\(raw)\": \(n) devices; at most \(Target.maximumDevices)")
            }
            count = n
            text = text[text.index(after: x)...]
        }
        let fields = text.split(separator: ":")
        guard fields.count == 3, let size = Double(fields[1]), let bandwidth = Double(fields[2]),
            size.isFinite, bandwidth.isFinite, size > 0, bandwidth > 0, size <= 1e7, bandwidth <= 1e6
        else {
            throw TargetError.target(
                "\"\(raw)\": inline hardware is KIND:GB:GBPS with 0 < GB ≤ 1e7 and 0 < GB/s ≤ 1e6, e.g. gpu:16:448 or ram:64:60")
        }
        let source = "given on the command line (\(raw))"
        switch fields[0] {
        case "gpu":
            gpus += Array(
                repeating: Device(name: raw, kind: .gpu, memory: size * 1e9, bandwidth: bandwidth * 1e9, source: source), count: count)
            return (.gpu, count)
        case "unified":
            unified = Device(name: raw, kind: .unified, memory: size * 1e9, bandwidth: bandwidth * 1e9, source: source)
            return (.unified, count)
        case "disk":
            disk = Device(name: raw, kind: .disk, memory: size * 1e9, bandwidth: bandwidth * 1e9, source: source)
            return (.disk, count)
        case "ram":
            memory = SystemMemory(name: raw, capacity: size * 1e9 * Double(count), bandwidth: bandwidth * 1e9, sockets: 1, source: source)
            return (nil, count)
        default: throw TargetError.target("\"\(raw)\": kind must be gpu, unified, ram or disk")
        }
    }
}
