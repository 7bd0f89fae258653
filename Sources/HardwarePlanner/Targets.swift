// Hardware targets as data (formats/hardware/targets.json, bundled as a resource) and composite targets by name:
// "rtx4090+256gb" (a GPU and 256 GB of dual-channel DDR5-5600), "2x3090+128gb-ddr4", "8xh200",
// "m3-ultra-512gb", "rtx4090+512gb-2x8ch-ddr5-4800+nvme-gen5", "384gb-12ch-ddr5-4800" (CPU only).
import Foundation
import TensorFormats

public enum TargetError: Error, Sendable, CustomStringConvertible {
    case unknown(String, known: [String])
    case catalog(String)
    public var description: String {
        switch self {
        case let .unknown(part, known): "unknown hardware \"\(part)\" (devices: \(known.joined(separator: ", ")); system memory: <N>gb[-CONFIG])"
        case .catalog(let what): "hardware catalog: \(what)"
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
        guard let data = try? Data(contentsOf: url) else { throw TargetError.catalog("cannot read \(url.path)") }
        return try HardwareCatalog(json: [UInt8](data))
    }

    /// This catalog with a user's file (same schema as targets.json) added; its entries replace same-named ones.
    public func adding(file path: String) throws -> HardwareCatalog {
        guard let data = FileManager.default.contents(atPath: path) else { throw TargetError.catalog("cannot read \(path)") }
        let extra: HardwareCatalog
        do { extra = try HardwareCatalog(json: [UInt8](data)) } catch { throw TargetError.catalog("\(path): \(error)") }
        let names = Set(extra.devices.map(\.name)), memoryNames = Set(extra.memories.map(\.name))
        return HardwareCatalog(devices: devices.filter { !names.contains($0.name) } + extra.devices,
                               memories: memories.filter { !memoryNames.contains($0.name) } + extra.memories)
    }

    init(devices: [Device], memories: [SystemMemory]) {
        self.devices = devices
        self.memories = memories
    }

    public init(json bytes: [UInt8]) throws {
        let root = try JSONParser.parse(bytes)
        guard root["format"]?.stringValue == "moeq hardware targets 1" else { throw TargetError.catalog("format must be \"moeq hardware targets 1\"") }
        devices = try (root["devices"]?.arrayValue ?? []).map { d in
            guard let name = d["name"]?.stringValue, let kind = d["kind"]?.stringValue.flatMap(Device.Kind.init(rawValue:)),
                  let memory = d["memory"]?.doubleValue, let bandwidth = d["bandwidth"]?.doubleValue, let source = d["source"]?.stringValue else {
                throw TargetError.catalog("a device lacks name/kind/memory/bandwidth/source")
            }
            return Device(name: name, kind: kind, memory: memory, bandwidth: bandwidth, source: source,
                          flops: d["flops"]?.doubleValue, link: d["link"]?.doubleValue, computeEfficiency: d["compute_efficiency"]?.doubleValue)
        }
        memories = try (root["system_memory"]?.arrayValue ?? []).map { m in
            guard let name = m["name"]?.stringValue, let bandwidth = m["bandwidth"]?.doubleValue, let sockets = m["sockets"]?.intValue,
                  let source = m["source"]?.stringValue else { throw TargetError.catalog("a system_memory entry lacks name/bandwidth/sockets/source") }
            return SystemMemory(name: name, capacity: 0, bandwidth: bandwidth, sockets: sockets, source: source,
                                efficiency: m["efficiency"]?.doubleValue, cpuFlops: m["cpu_flops"]?.doubleValue)
        }
    }

    /// A composite target from its name: parts joined by "+", each a device ("rtx4090", "2x3090" → two RTX 3090,
    /// "8xh200"), a unified-memory machine, a disk ("nvme-gen5"), or system memory "<N>gb[-CONFIG]" (CONFIG from
    /// the catalog's system_memory; default dual-channel DDR5-5600). Without a disk part, NVMe Gen4 is assumed.
    public func target(_ name: String) throws -> Target {
        var target = Target(name: name)
        for raw in name.lowercased().split(separator: "+").map(String.init) {
            if raw.contains(":") {
                try target.add(inline: raw)
                continue
            }
            var part = raw, count = 1
            if let x = part.firstIndex(of: "x"), let n = Int(part[..<x]), n > 0 { count = n; part = String(part[part.index(after: x)...]) }
            let aliases = ["3090": "rtx3090", "4090": "rtx4090", "5090": "rtx5090", "pro6000": "rtx-pro-6000"]
            part = aliases[part] ?? part
            if let device = devices.first(where: { $0.name == part }) {
                switch device.kind {
                case .gpu: target.gpus += Array(repeating: device, count: count)
                case .unified: target.unified = device
                case .disk: target.disk = device
                }
                continue
            }
            if let gb = part.firstRange(of: "gb"), let size = Double(part[..<gb.lowerBound]) {
                let config = String(part[gb.upperBound...]).trimmingCharacters(in: CharacterSet(charactersIn: "-"))
                guard let memory = memories.first(where: { $0.name == (config.isEmpty ? "ddr5" : config) }) else {
                    throw TargetError.unknown(raw, known: devices.map(\.name) + memories.map { "<N>gb-\($0.name)" })
                }
                target.memory = SystemMemory(name: memory.name, capacity: size * 1e9 * Double(count), bandwidth: memory.bandwidth,
                                             sockets: memory.sockets, source: memory.source, efficiency: memory.efficiency, cpuFlops: memory.cpuFlops)
                continue
            }
            throw TargetError.unknown(raw, known: devices.map(\.name) + memories.map { "<N>gb-\($0.name)" })
        }
        if target.disk == nil { target.disk = devices.first { $0.name == "nvme-gen4" } }
        return target
    }
}

extension Target {
    /// Hardware given on the command line: `KIND:GB:GBPS` with KIND gpu, unified, ram or disk, capacity in GB and
    /// bandwidth in GB/s (e.g. `gpu:16:448+ram:64:60`, `2xgpu:24:936`). No FLOP/s are known for these, so prefill
    /// uses the planner's defaults.
    mutating func add(inline raw: String) throws {
        var text = Substring(raw), count = 1
        if let x = text.firstIndex(of: "x"), let n = Int(text[..<x]), n > 0 { count = n; text = text[text.index(after: x)...] }
        let fields = text.split(separator: ":")
        guard fields.count == 3, let size = Double(fields[1]), let bandwidth = Double(fields[2]), size > 0, bandwidth > 0 else {
            throw TargetError.catalog("\"\(raw)\": inline hardware is KIND:GB:GBPS, e.g. gpu:16:448 or ram:64:60")
        }
        let source = "given on the command line (\(raw))"
        switch fields[0] {
        case "gpu": gpus += Array(repeating: Device(name: raw, kind: .gpu, memory: size * 1e9, bandwidth: bandwidth * 1e9, source: source), count: count)
        case "unified": unified = Device(name: raw, kind: .unified, memory: size * 1e9, bandwidth: bandwidth * 1e9, source: source)
        case "disk": disk = Device(name: raw, kind: .disk, memory: size * 1e9, bandwidth: bandwidth * 1e9, source: source)
        case "ram": memory = SystemMemory(name: raw, capacity: size * 1e9 * Double(count), bandwidth: bandwidth * 1e9, sockets: 1, source: source)
        default: throw TargetError.catalog("\"\(raw)\": kind must be gpu, unified, ram or disk")
        }
    }
}
