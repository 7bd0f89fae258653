// Where the engine's weights come from, by role: a safetensors checkpoint in any source encoding (here), or a GGUF
// that moeq (or llama.cpp) wrote for the same model (GGUFWeights.swift). Both check, before any data is read, that the
// weights have the shapes the spec says.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// f32 weights for the forward pass, looked up by role.
public protocol WeightProvider {
    var spec: ModelSpec { get }
    func has(_ role: TensorRole) -> Bool
    func weight(_ role: TensorRole) throws -> [Float]
    /// The bias added after `role`'s product (GLM's q/k/v), or nil when the model has none there.
    func bias(_ role: TensorRole) throws -> [Float]?
    /// How a matmul input is rounded before it meets `role`'s weight (llama.cpp CPU arithmetic), or nil for exact f32.
    func dotInput(_ role: TensorRole) -> GGMLDotInput?
    /// Rows `rows` of `role`'s weight [rows.count × columns] (the embedding's token rows, a slice of the output head),
    /// decoded without the rest.
    func weightRows(_ role: TensorRole, _ rows: Range<Int>) throws -> [Float]
    /// For a weight too large to be worth decoding whole (see `WeightRows.minimumBytes`): a decoder of its rows, so a
    /// product can decode a slice of output rows into cache-sized memory and multiply it there. Nil otherwise.
    func rowDecoder(_ role: TensorRole) -> WeightRows?
    /// The mapped file regions holding the stored weights of decoder layer `layer` (nil: embedding, final norm,
    /// output head), for read-ahead and for counting bytes read.
    func regions(layer: Int?) -> [(file: MappedFile, bytes: Range<Int>)]
    /// Called when a layer-major pass is done with decoder layer `layer` (nil: embedding, final norm, head): a
    /// provider drops the weights it decoded for it (the pass does not come back to a layer it left), so memory
    /// does not grow with the number of layers.
    func doneWithLayer(_ layer: Int?)
}

extension WeightProvider {
    public func dotInput(_ role: TensorRole) -> GGMLDotInput? { nil }
    public func bias(_ role: TensorRole) throws -> [Float]? { nil }
    public func regions(layer: Int?) -> [(file: MappedFile, bytes: Range<Int>)] { [] }
    public func rowDecoder(_ role: TensorRole) -> WeightRows? { nil }
    public func doneWithLayer(_ layer: Int?) {}

    public func weightRows(_ role: TensorRole, _ rows: Range<Int>) throws -> [Float] {
        let all = try weight(role)
        let width = all.count / max(rowCount(role), 1)
        return Array(all[(rows.lowerBound * width)..<(rows.upperBound * width)])
    }

    /// Rows of `role`'s weight as the forward pass sees it ([out, in]: the vocabulary for the embedding and head).
    func rowCount(_ role: TensorRole) -> Int {
        switch role {
        case .embedding, .outputHead: spec.vocabularySize
        default: 1
        }
    }

    /// x · Wᵀ for the weight of `role` ([tokens × inputs] → [tokens × outputs]); the observer sees the input as it is,
    /// the product uses it rounded as llama.cpp's CPU backend would when `dotInput` says so.
    func project(_ x: [Float], tokens: Int, inputs: Int, _ role: TensorRole, outputs: Int, observer: ActivationObserver?) throws -> [Float]
    {
        try project(x, tokens: tokens, inputs: inputs, [(role, outputs)], observer: observer)[0]
    }

    /// The products of one input with several weights (q/k/v, gate/up), rounding the input once per rounding kind.
    func project(
        _ x: [Float], tokens: Int, inputs: Int, _ targets: [(role: TensorRole, outputs: Int)], observer: ActivationObserver?
    ) throws -> [[Float]] {
        var rounded: [GGMLDotInput: [Float]] = [:]
        func input(_ role: TensorRole) -> [Float] {
            guard let rounding = dotInput(role), rounding != .f32, inputs % rounding.blockSize == 0 else { return x }
            let values = rounded[rounding] ?? DenseOps.rounded(x, rows: tokens, width: inputs, rounding)
            rounded[rounding] = values
            return values
        }
        return try targets.map { role, outputs in
            observer?.observe(role, input: x, rows: tokens, width: inputs)
            // A large weight with no observer of products: decoded a slice of rows at a time inside the product.
            if observer == nil, let decoder = rowDecoder(role) {
                guard decoder.rows == outputs, decoder.columns == inputs else {
                    throw EngineError.shape(what: "\(role)", expected: [outputs, inputs], found: decoder.rows * decoder.columns)
                }
                return try decoder.product(input(role), tokens: tokens)
            }
            let w = try weight(role)
            guard w.count == inputs * outputs else {
                throw EngineError.shape(what: "\(role)", expected: [outputs, inputs], found: w.count)
            }
            let y = DenseOps.linear(input(role), tokens: tokens, inputs: inputs, w, outputs: outputs)
            observer?.observeProduct(role, input: x, rows: tokens, width: inputs, weight: w, output: y)
            return y
        }
    }
}

/// Decoded weights kept between windows up to a byte budget (oldest dropped first), so that a validate run over
/// many chunks decodes each weight once when the model fits the budget, and memory stays bounded when it does not.
final class DecodedWeightCache {
    let budget: Int
    private var values: [TensorRole: [Float]] = [:]
    private var order: [TensorRole] = []
    private var bytes = 0
    /// The most bytes held at once.
    private(set) var peakBytes = 0
    private let lock = NSLock()

    init(budget: Int) { self.budget = budget }

    /// Safe to call from several threads (experts decode concurrently); a role two threads miss at once is decoded twice.
    func value(_ role: TensorRole, _ decode: () throws -> [Float]) rethrows -> [Float] {
        if let hit = lock.withLock({ values[role] }) { return hit }
        let decoded = try decode()
        let size = decoded.count * 4
        guard size <= budget else { return decoded }
        lock.lock()
        defer { lock.unlock() }
        if let hit = values[role] { return hit }
        while bytes + size > budget, !order.isEmpty {
            let oldest = order.removeFirst()
            bytes -= (values.removeValue(forKey: oldest)?.count ?? 0) * 4
        }
        values[role] = decoded
        order.append(role)
        bytes += size
        peakBytes = max(peakBytes, bytes)
        return decoded
    }

    /// Drops every entry when a layer-major pass leaves a layer: the pass never comes back to a layer it left, and
    /// the next pass would meet the entries only if the whole model fitted the budget, which would make memory grow
    /// with the model up to the budget. Entries serve the batches within a layer.
    func leftLayer() {
        lock.withLock {
            values.removeAll()
            order.removeAll()
            bytes = 0
        }
    }

    /// Bytes of decoded weights held now.
    var heldBytes: Int { lock.withLock { bytes } }
}

/// Bytes of decoded f32 weights each model keeps between batches (MOEQ_WEIGHT_CACHE_MB overrides; 0 disables). A
/// layer-major pass decodes each weight once per batch, so this mostly serves small models and repeated heads.
public let decodedWeightBudget: Int = {
    if let text = ProcessInfo.processInfo.environment["MOEQ_WEIGHT_CACHE_MB"], let mb = Int(text), (0...(1 << 30)).contains(mb) {
        return mb << 20
    }
    return 256 << 20
}()

/// Weights decoded from a safetensors checkpoint (BF16/F16/F32, FP8 blocks, packed INT4).
public struct CheckpointWeights: WeightProvider {
    public let spec: ModelSpec
    public let layout: TensorLayout
    let resolver: WeightResolver
    let cache: DecodedWeightCache
    /// Per-expert roles cut from fused expert tensors (gpt-oss): checkpoint name, where the expert sits, which expert.
    let fused: [TensorRole: (name: String, view: FusedExpertView, expert: Int)]
    let fusedBiases: [TensorRole: (name: String, view: FusedExpertView, expert: Int)]

    /// Opens the checkpoint at `path` and checks every weight's shape against its config.json (headers only).
    /// `cacheBytes` bounds the decoded weights kept between passes.
    public init(path: String, cacheBytes: Int = decodedWeightBudget) throws {
        cache = DecodedWeightCache(budget: cacheBytes)
        let checkpoint = try Checkpoint(path: path)
        let configPath = (checkpoint.directory as NSString).appendingPathComponent("config.json")
        spec = try ModelSpec(configFile: configPath)
        guard spec.architecture.isConvertible else {
            throw EngineError.unsupported("\(spec.modelType) models (`moeq plan` and `inspect` read them)")
        }
        layout = spec.tensorLayout
        try layout.checkTensorCount(stored: checkpoint.tensors.count, config: configPath)
        resolver = WeightResolver(checkpoint: checkpoint, quantization: spec.quantization)
        var fused: [TensorRole: (name: String, view: FusedExpertView, expert: Int)] = [:], fusedBiases = fused
        for plan in layout.ggufTensors(includeOutputHead: true) {
            guard case let .fusedExperts(name, view) = plan.source, case let .routedExperts(l, projection) = plan.role else { continue }
            for e in 0..<spec.routedExpertCount {
                let role = TensorRole.routedExpert(layer: l, expert: e, projection: projection)
                if view.isBias { fusedBiases[role] = (name, view, e) } else { fused[role] = (name, view, e) }
            }
        }
        self.fused = fused
        self.fusedBiases = fusedBiases
        try layout.check(try resolver.allWeights(), directory: checkpoint.directory, config: configPath)
        try ReferenceModel.checkComplete(self, source: checkpoint.directory)
    }

    /// Expert `slice.expert`'s matrix (or bias row) cut from its fused tensor.
    func fusedValues(_ slice: (name: String, view: FusedExpertView, expert: Int)) throws -> [Float] {
        let weight = try resolver.weight(named: slice.name), (rows, width) = slice.view.storedRows(expert: slice.expert)
        guard weight.columns == width, rows.upperBound <= weight.rows else {
            throw EngineError.shape(what: slice.name, expected: [rows.upperBound, width], found: weight.elementCount)
        }
        var block = [Float](repeating: 0, count: rows.count * width)
        try block.withUnsafeMutableBufferPointer { try weight.decodeRows(rows, into: $0) }
        weight.releasePages(rows: rows)
        try checkFinite(block, file: weight.storedTensors.first?.file.path ?? resolver.checkpoint.directory, tensor: slice.name)
        var values = [Float](repeating: 0, count: slice.view.rows * slice.view.columns)
        block.withUnsafeBufferPointer { b in
            values.withUnsafeMutableBufferPointer { slice.view.extract(b, rows: 0..<slice.view.rows, into: $0) }
        }
        return values
    }

    public func has(_ role: TensorRole) -> Bool {
        if fused[role] != nil { return true }
        return layout.checkpointName(role, part: layout.storedPart(of: role)).map(resolver.hasWeight(named:)) ?? false
    }

    public func weight(_ role: TensorRole) throws -> [Float] {
        try cache.value(role) {
            if let slice = fused[role] { return try fusedValues(slice) }
            guard let name = layout.checkpointName(role, part: layout.storedPart(of: role)) else {
                throw EngineError.unsupported("a weight for \(role) in \(spec.modelType)")
            }
            let weight = try resolver.weight(named: name)
            let values = try ParallelDecode.decodeAll(weight)
            weight.releasePages()  // the values are a copy: a model larger than memory keeps one weight's pages resident
            try checkFinite(values, file: weight.storedTensors.first?.file.path ?? resolver.checkpoint.directory, tensor: name)
            return values
        }
    }

    public func bias(_ role: TensorRole) throws -> [Float]? {
        if let slice = fusedBiases[role] { return try fusedValues(slice) }
        guard let name = layout.checkpointName(role, part: .bias), resolver.hasWeight(named: name) else { return nil }
        let weight = try resolver.weight(named: name)
        let values = try ParallelDecode.decodeAll(weight)
        try checkFinite(values, file: weight.storedTensors.first?.file.path ?? resolver.checkpoint.directory, tensor: name)
        return values
    }

    public func rowDecoder(_ role: TensorRole) -> WeightRows? { rowDecoder(role, minimumBytes: WeightRows.minimumBytes) }

    func rowDecoder(_ role: TensorRole, minimumBytes: Int) -> WeightRows? {
        guard let name = layout.checkpointName(role, part: layout.storedPart(of: role)), let weight = try? resolver.weight(named: name),
            weight.shape.count == 2, 4 * weight.elementCount >= minimumBytes
        else { return nil }
        return WeightRows(
            rows: weight.rows, columns: weight.columns, file: weight.storedTensors.first?.file.path ?? resolver.checkpoint.directory,
            tensor: name
        ) { rows, buffer in
            try weight.decodeRows(rows, into: buffer)
            weight.releasePages(rows: rows)
        }
    }

    public func weightRows(_ role: TensorRole, _ rows: Range<Int>) throws -> [Float] {
        guard let name = layout.checkpointName(role, part: layout.storedPart(of: role)) else {
            throw EngineError.unsupported("a weight for \(role) in \(spec.modelType)")
        }
        let weight = try resolver.weight(named: name)
        var values = [Float](repeating: 0, count: rows.count * weight.columns)
        // Runs of rows decoded on all cores (a head slice is tens of millions of values); the first failure is thrown.
        let failures = ParallelDecode.Failures(), columns = weight.columns
        values.withUnsafeMutableBufferPointer { out in
            Parallel.rows(rows.count, minimum: 64) { run in
                do {
                    try weight.decodeRows(
                        (rows.lowerBound + run.lowerBound)..<(rows.lowerBound + run.upperBound),
                        into: UnsafeMutableBufferPointer(rebasing: out[(run.lowerBound * columns)..<(run.upperBound * columns)]))
                } catch { failures.record(run.lowerBound, error) }
            }
        }
        try failures.throwFirst()
        weight.releasePages(rows: rows)
        try checkFinite(values, file: weight.storedTensors.first?.file.path ?? resolver.checkpoint.directory, tensor: name)
        return values
    }

    public func doneWithLayer(_ layer: Int?) { cache.leftLayer() }

    public func regions(layer: Int?) -> [(file: MappedFile, bytes: Range<Int>)] {
        layout.expectedTensors().filter { $0.role.layer == layer }.flatMap { tensor in
            (try? resolver.weight(named: tensor.name))?.regions ?? []
        }
    }
}

/// Refuses a decoded weight holding NaN or infinity (a damaged file), naming where.
func checkFinite(_ values: [Float], file: String, tensor: String) throws {
    // Runs of values on all cores; the first bad index of the earliest run with one is the first overall.
    let runs = Parallel.threads * 4, step = (values.count + runs - 1) / max(runs, 1)
    var firstBad = [Int](repeating: Int.max, count: runs)
    values.withUnsafeBufferPointer { v in
        firstBad.withUnsafeMutableBufferPointer { found in
            Parallel.forEach(values.count >= 1 << 16 ? runs : 1) { r in
                let start = r * step, end = values.count >= 1 << 16 ? min(v.count, start + step) : v.count
                var i = start
                while i < end {
                    // x · 0 is 0 for every finite x and NaN for ±∞ and NaN: one multiply-add per value, no branch.
                    let stop = min(end, i + 1024)
                    var lanes = SIMD8<Float>(repeating: 0), j = i
                    while j + 8 <= stop {
                        lanes += UnsafeRawPointer(v.baseAddress! + j).loadUnaligned(as: SIMD8<Float>.self) * 0
                        j += 8
                    }
                    var probe = lanes.sum()
                    while j < stop { probe += v[j] * 0; j += 1 }
                    if probe.isNaN, let bad = (i..<stop).first(where: { !v[$0].isFinite }) {
                        found[r] = bad
                        return
                    }
                    i = stop
                }
            }
        }
    }
    if let bad = firstBad.min(), bad != Int.max {
        throw EngineError.nonFinite(file: file, tensor: tensor, index: bad, value: values[bad])
    }
}
