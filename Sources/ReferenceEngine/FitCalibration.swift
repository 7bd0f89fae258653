// What `moeq fit` needs from the engine beyond the sensitivity pass: a model whose weights are what a GGUF of a given
// type per tensor would hold (quantized and decoded on the fly, so a probe mix costs one forward pass and no file), and
// the calibration that turns per-tensor output errors into a predicted end-to-end KL divergence.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// The base checkpoint's weights as a GGUF with `types[tensor]` per quantizable tensor would hold them (bit-equal to
/// the stored values: the same quantizer and importance rows as the conversion). Tensors without a type stay f32.
public struct RoundTripWeights: WeightProvider {
    public let base: WeightProvider
    public let types: [String: QuantType]
    let targets: QuantTargets
    let importance: ImportanceMatrix?
    let widths: [String: Int]
    let cache = DecodedWeightCache(budget: 256 << 20)
    /// Products round their input as llama.cpp's CPU backend would for each tensor's type (GGUFWeights' `llamaCPUArithmetic`).
    public let llamaCPUArithmetic: Bool

    public init(base: WeightProvider, types: [String: QuantType], importance: ImportanceMatrix?, llamaCPUArithmetic: Bool = false) {
        self.base = base
        self.types = types
        self.importance = importance
        self.llamaCPUArithmetic = llamaCPUArithmetic
        targets = QuantTargets(spec: base.spec, includeOutputHead: base.has(.outputHead))
        widths = Dictionary(targets.tensors.map { ($0.name, $0.rowWidth) }, uniquingKeysWith: { a, _ in a })
    }

    public var spec: ModelSpec { base.spec }
    public func has(_ role: TensorRole) -> Bool { base.has(role) }
    public func bias(_ role: TensorRole) throws -> [Float]? { try base.bias(role) }
    public func regions(layer: Int?) -> [(file: MappedFile, bytes: Range<Int>)] { base.regions(layer: layer) }
    public func dotInput(_ role: TensorRole) -> GGMLDotInput? {
        guard llamaCPUArithmetic, case .plain(let name, _)? = targets.roles[role], let type = types[name] else { return nil }
        return GGMLDotInput(weight: type)
    }

    public func doneWithLayer(_ layer: Int?) {
        cache.leftLayer()
        base.doneWithLayer(layer)
    }

    public func weight(_ role: TensorRole) throws -> [Float] {
        guard let target = targets.roles[role] else { return try base.weight(role) }
        return try cache.value(role) {
            let w = try base.weight(role)
            let width: Int
            switch target {
            case .plain(let name, _): width = widths[name] ?? w.count
            case .latentKeyValue(_, _, let heads, let nope, let valueDim): width = w.count / max(heads * (nope + valueDim), 1)
            }
            return try target.reconstruct(w, width: width, importance: importance) { types[$0] }
        }
    }

    public func weightRows(_ role: TensorRole, _ rows: Range<Int>) throws -> [Float] {
        // Rows are quantized independently (importance is per column), so a slice round-trips as the whole would.
        guard case .plain(let name, let matrix)? = targets.roles[role], let type = types[name], type != .f32 else {
            return try base.weightRows(role, rows)
        }
        let w = try base.weightRows(role, rows)
        let width = widths[name] ?? w.count
        let row = type.layout.usesImportance ? importance?.importance(for: name, width: width, matrix: matrix) : nil
        let bytes = try QuantCodec.quantize(type, w, rows: rows.count, width: width, importance: row)
        return try QuantCodec.dequantize(type, bytes, count: w.count)
    }
}

/// Turns measured per-tensor output errors into a predicted KL divergence. Each tensor belongs to a group (its GGUF
/// name without the block number: the down projection of the routed experts, an attention value projection, the embedding); a group's errors
/// count with the weight its probe measured (KLD of the model with only that group quantized, over the group's summed
/// relative error), and the sum is mapped to KLD by a power law fitted on whole-model probes.
public struct FitCalibration: Sendable, Equatable {
    public struct Probe: Sendable, Equatable {
        public let label: String
        /// Σ group weight × relative error of the probe's mix (the solver's objective) and the KLD it measured.
        public let score: Double
        public let measuredKLD: Double
        public let measuredPPLRatio: Double
        public let measuredTop1: Double
    }
    /// Per group: KLD per unit of summed relative error.
    public var groupWeights: [String: Double]
    /// KLD = scale · score^exponent.
    public var scale: Double
    public var exponent: Double
    public var probes: [Probe]

    public init(groupWeights: [String: Double], scale: Double, exponent: Double, probes: [Probe]) {
        self.groupWeights = groupWeights
        self.scale = scale
        self.exponent = exponent
        self.probes = probes
    }

    /// Blocks per probe group (1: every tensor its own probe).
    public var layersPerGroup = 1

    /// The kind of a GGUF tensor: its name without the block number.
    public static func kind(_ name: String) -> String { GGUFTensorName.split(name).kind }

    /// The probe group of a GGUF tensor: its kind and a run of `layersPerGroup` blocks (the kind, "@", then the first and last block).
    public static func group(_ name: String, layersPerGroup: Int) -> String {
        let (block, kind) = GGUFTensorName.split(name)
        guard let layer = block else { return name }
        let first = layer / max(layersPerGroup, 1) * max(layersPerGroup, 1)
        return kind + (layersPerGroup <= 1 ? "@\(layer)" : "@\(first)-\(first + layersPerGroup - 1)")
    }

    public func group(_ name: String) -> String { Self.group(name, layersPerGroup: layersPerGroup) }

    /// Blocks per group so that there are at most `maxGroups` probes (one per tensor on small models).
    public static func layersPerGroup(_ tensors: [TensorSensitivity], maxGroups: Int) -> Int {
        let kinds = Set(tensors.map { kind($0.name) }).count
        let layers = (tensors.compactMap(\.layer).max() ?? 0) + 1
        return max(1, (kinds * layers + maxGroups - 1) / max(maxGroups, 1))
    }

    /// The solver's objective for one tensor at one type (nil: not measured).
    public func cost(_ tensor: TensorSensitivity, _ type: QuantType) -> Double? {
        if type == .f32 { return 0 }
        guard let r = tensor.relativeError(type) else { return nil }
        return (groupWeights[group(tensor.name)] ?? 1) * r
    }

    public func score(_ tensors: [TensorSensitivity], types: [String: QuantType]) -> Double {
        tensors.reduce(0) { sum, t in sum + (types[t.name].flatMap { cost(t, $0) } ?? 0) }
    }

    public func predictedKLD(score: Double) -> Double { score > 0 ? scale * pow(score, exponent) : 0 }

    /// Measures the calibration: one probe per group (that group at `probeType`, where measured, the rest f32), then
    /// whole-model probes at each of `wholeTypes` (every tensor at the type, or the nearest measured one) for the power
    /// law. `evaluate(types)` runs a mix and returns (KLD, PPL ratio, top-1 agreement).
    public static func measure(
        _ tensors: [TensorSensitivity], probeType: QuantType, wholeTypes: [QuantType], maxGroups: Int = 48,
        evaluate: ([String: QuantType]) throws -> (kld: Double, ratio: Double, top1: Double), note: (String) -> Void = { _ in }
    ) throws -> FitCalibration {
        func measuredType(_ t: TensorSensitivity, _ wanted: QuantType) -> QuantType? {
            if t.squaredError[wanted] != nil { return wanted }
            // The measured candidate nearest in bits per weight.
            return t.squaredError.keys.min { a, b in
                (abs(a.bitsPerWeight - wanted.bitsPerWeight), a.rawValue) < (abs(b.bitsPerWeight - wanted.bitsPerWeight), b.rawValue)
            }
        }
        var groups: [String: [TensorSensitivity]] = [:]
        let layersPerGroup = Self.layersPerGroup(tensors, maxGroups: maxGroups)
        for t in tensors { groups[group(t.name, layersPerGroup: layersPerGroup), default: []].append(t) }
        var weights: [String: Double] = [:]
        var probes: [Probe] = []
        for (name, members) in groups.sorted(by: { $0.key < $1.key }) {
            var types: [String: QuantType] = [:]
            var relative = 0.0
            for t in members {
                guard let type = measuredType(t, probeType), let r = t.relativeError(type) else { continue }
                types[t.name] = type
                relative += r
            }
            guard relative > 0 else { continue }
            let result = try evaluate(types)
            weights[name] = max(result.kld, 0) / relative
            note(String(format: "probe %@ at %@: KLD %.6f", name, probeType.rawValue, result.kld))
            probes.append(
                Probe(
                    label: "\(name) at \(probeType.rawValue)", score: max(result.kld, 0), measuredKLD: result.kld,
                    measuredPPLRatio: result.ratio, measuredTop1: result.top1))
        }
        // A probe lost in noise must not make its group free: no weight below a thousandth of the median.
        let sorted = weights.values.sorted()
        if let median = sorted.isEmpty ? nil : sorted[sorted.count / 2] {
            for (k, v) in weights { weights[k] = max(v, median * 1e-3) }
        }
        var calibration = FitCalibration(groupWeights: weights, scale: 1, exponent: 1, probes: probes)
        calibration.layersPerGroup = layersPerGroup
        var points: [(score: Double, kld: Double)] = []
        for whole in wholeTypes {
            var types: [String: QuantType] = [:]
            for t in tensors { if let type = measuredType(t, whole) { types[t.name] = type } }
            let score = calibration.score(tensors, types: types)
            let result = try evaluate(types)
            note(String(format: "probe all at %@: KLD %.6f (sum of group predictions %.6f)", whole.rawValue, result.kld, score))
            calibration.probes.append(
                Probe(
                    label: "all at \(whole.rawValue)", score: score, measuredKLD: result.kld, measuredPPLRatio: result.ratio,
                    measuredTop1: result.top1))
            if score > 0, result.kld > 0 { points.append((score, result.kld)) }
        }
        // Least squares in log space: log KLD = log scale + exponent · log score (exponent 1 with fewer than two points).
        if points.count >= 2 {
            let xs = points.map { log($0.score) }, ys = points.map { log($0.kld) }
            let mx = xs.reduce(0, +) / Double(xs.count), my = ys.reduce(0, +) / Double(ys.count)
            var sxx = 0.0, sxy = 0.0
            for (x, y) in zip(xs, ys) {
                sxx += (x - mx) * (x - mx)
                sxy += (x - mx) * (y - my)
            }
            if sxx > 1e-12 {
                calibration.exponent = min(max(sxy / sxx, 0.5), 2)
                calibration.scale = exp(my - calibration.exponent * mx)
            }
        } else if let point = points.first {
            calibration.scale = point.kld / point.score
        }
        return calibration
    }
}

/// The cache `moeq fit` keeps between budgets (`formats/sensitivity.md`): the measured sensitivities and calibration,
/// keyed by what they depend on (model, calibration windows, importance matrix, candidates).
public struct SensitivityFile: Sendable, Equatable {
    public static let format = "moeq sensitivity 1"
    public let key: String
    public let candidates: [QuantType]
    public let tensors: [TensorSensitivity]
    public let calibration: FitCalibration

    public init(key: String, candidates: [QuantType], tensors: [TensorSensitivity], calibration: FitCalibration) {
        self.key = key
        self.candidates = candidates
        self.tensors = tensors
        self.calibration = calibration
    }

    public var json: JSONValue {
        func types(_ values: [QuantType: Double]) -> JSONValue {
            .object(JSONObject(values.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key.rawValue, .double($0.value)) }))
        }
        let tensorValues: [JSONValue] = tensors.map { t in
            .object(
                JSONObject([
                    ("name", .string(t.name)), ("layer", t.layer.map { .integer(Int64($0)) } ?? .null),
                    ("elements", .integer(Int64(t.elements))), ("row_width", .integer(Int64(t.rowWidth))),
                    ("rows", .integer(Int64(t.rows))), ("output_energy", .double(t.outputEnergy)),
                    ("squared_error", types(t.squaredError)),
                    (
                        "unavailable",
                        .object(
                            JSONObject(
                                t.unavailable.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key.rawValue, .string($0.value)) }))
                    ),
                ]))
        }
        let probes: [JSONValue] = calibration.probes.map { p in
            .object(
                JSONObject([
                    ("label", .string(p.label)), ("score", .double(p.score)), ("kld", .double(p.measuredKLD)),
                    ("ppl_ratio", .double(p.measuredPPLRatio)), ("top1", .double(p.measuredTop1)),
                ]))
        }
        return .object(
            JSONObject([
                ("format", .string(Self.format)), ("key", .string(key)), ("candidates", .array(candidates.map { .string($0.rawValue) })),
                (
                    "calibration",
                    .object(
                        JSONObject([
                            (
                                "group_weights",
                                .object(JSONObject(calibration.groupWeights.sorted { $0.key < $1.key }.map { ($0.key, .double($0.value)) }))
                            ),
                            ("layers_per_group", .integer(Int64(calibration.layersPerGroup))),
                            ("scale", .double(calibration.scale)), ("exponent", .double(calibration.exponent)), ("probes", .array(probes)),
                        ]))
                ),
                ("tensors", .array(tensorValues)),
            ]))
    }

    /// Reads a sensitivity file; anything malformed is refused naming the file and the key.
    public init(path: String) throws {
        let root = try JSONParser.parse(file: path)
        func bad(_ what: String) -> EngineError { .unreadable(file: path, reason: what) }
        guard root["format"]?.stringValue == Self.format else { throw bad("format is not \"\(Self.format)\"") }
        guard let key = root["key"]?.stringValue else { throw bad("key: missing") }
        func type(_ text: String, _ at: String) throws -> QuantType {
            guard let t = QuantType(rawValue: text) else { throw bad("\(at): unknown type \(text)") }
            return t
        }
        func number(_ value: JSONValue?, _ at: String) throws -> Double {
            guard let d = value?.doubleValue, d.isFinite, d >= 0 else { throw bad("\(at): must be a finite number ≥ 0") }
            return d
        }
        func count(_ value: JSONValue?, _ at: String) throws -> Int {
            guard let i = value?.intValue, i >= 0 else { throw bad("\(at): must be an integer ≥ 0") }
            return i
        }
        let candidates = try (root["candidates"]?.arrayValue ?? []).enumerated().map { i, v in
            try type(v.stringValue ?? "", "candidates[\(i)]")
        }
        var tensors: [TensorSensitivity] = []
        for (i, value) in (root["tensors"]?.arrayValue ?? []).enumerated() {
            let at = "tensors[\(i)]"
            guard let name = value["name"]?.stringValue else { throw bad("\(at).name: missing") }
            let width = try count(value["row_width"], "\(at).row_width")
            var t = TensorSensitivity(
                name: name, layer: value["layer"]?.intValue, elements: try count(value["elements"], "\(at).elements"), rowWidth: width)
            t.rows = try count(value["rows"], "\(at).rows")
            t.outputEnergy = try number(value["output_energy"], "\(at).output_energy")
            for (k, v) in value["squared_error"]?.objectValue?.pairs ?? [] {
                t.squaredError[try type(k, "\(at).squared_error")] = try number(v, "\(at).squared_error.\(k)")
            }
            for (k, v) in value["unavailable"]?.objectValue?.pairs ?? [] {
                t.unavailable[try type(k, "\(at).unavailable")] = v.stringValue ?? ""
            }
            tensors.append(t)
        }
        guard !tensors.isEmpty else { throw bad("tensors: none") }
        let c = root["calibration"]
        var weights: [String: Double] = [:]
        for (k, v) in c?["group_weights"]?.objectValue?.pairs ?? [] { weights[k] = try number(v, "calibration.group_weights.\(k)") }
        let probes = try (c?["probes"]?.arrayValue ?? []).enumerated().map { i, p in
            let at = "calibration.probes[\(i)]"
            return FitCalibration.Probe(
                label: p["label"]?.stringValue ?? "", score: try number(p["score"], "\(at).score"),
                measuredKLD: try number(p["kld"], "\(at).kld"),
                measuredPPLRatio: try number(p["ppl_ratio"], "\(at).ppl_ratio"), measuredTop1: try number(p["top1"], "\(at).top1"))
        }
        let scale = try number(c?["scale"], "calibration.scale"), exponent = try number(c?["exponent"], "calibration.exponent")
        guard exponent > 0 else { throw bad("calibration.exponent: must be > 0") }
        var calibration = FitCalibration(groupWeights: weights, scale: scale, exponent: exponent, probes: probes)
        calibration.layersPerGroup = try count(c?["layers_per_group"], "calibration.layers_per_group")
        guard calibration.layersPerGroup >= 1 else { throw bad("calibration.layers_per_group: must be ≥ 1") }
        self.init(key: key, candidates: candidates, tensors: tensors, calibration: calibration)
    }

    public func write(to path: String) throws {
        try AtomicFile.write(json.prettyPrinted(), to: path)
    }
}
