// The forward passes as stages — embed, one decoder layer, final norm + head — so windows can advance one layer at a
// time (layer-major: each layer's weights read and decoded once for all windows) or one window at a time; the per-window
// arithmetic is the same code either way, so both orders give the same logits bit for bit.
import CRowGEMM
import Foundation
import ModelCatalog
import TensorFormats

public protocol LayerForward {
    var spec: ModelSpec { get }
    var weights: WeightProvider { get }
    var observer: ActivationObserver? { get set }
    /// One decoder layer on the hidden states `x` [tokens × hidden] of consecutive causal windows, in place; `windows`
    /// gives their token counts (attention stays within a window, positions restart at 0 in each).
    func layer(_ layer: Int, _ x: inout [Float], windows: [Int]) throws
}

extension LayerForward {
    /// One decoder layer on one causal window.
    public func layer(_ layer: Int, _ x: inout [Float], tokens: Int) throws { try self.layer(layer, &x, windows: [tokens]) }

    /// SwiGLU feed-forward, down(silu(x·gateᵀ) ⊙ x·upᵀ): dense layers, shared and routed experts.
    func swiGLUFeedForward(_ x: [Float], tokens t: Int, roles: (Projection) -> TensorRole, width: Int) throws -> [Float] {
        let h = spec.hiddenSize
        var gateUp = try weights.project(x, tokens: t, inputs: h, [(roles(.gate), width), (roles(.up), width)], observer: observer)
        // gpt-oss's experts add a bias after each product.
        for i in 0..<2 { if let bias = try weights.bias(roles(i == 0 ? .gate : .up)) { DenseOps.addRows(&gateUp[i], bias) } }
        let act = DenseOps.swiGLU(gateUp[0], gateUp[1], clamped: spec.clampedSwiGLU)
        var out = try weights.project(act, tokens: t, inputs: width, roles(.down), outputs: h, observer: observer)
        if let bias = try weights.bias(roles(.down)) { DenseOps.addRows(&out, bias) }
        return out
    }

    /// Token embeddings [tokens × hidden] of one window. An embedding larger than `largeWeightBytes` in f32 is read
    /// row by row for the tokens present, never decoded whole.
    public func embed(_ ids: [Int], largeWeightBytes: Int = LayerMajor.largeWeightBytes) throws -> [Float] {
        let h = spec.hiddenSize
        for (i, id) in ids.enumerated() where id < 0 || id >= spec.vocabularySize {
            throw EngineError.token(index: i, id: id, vocabulary: spec.vocabularySize)
        }
        var x = [Float](repeating: 0, count: ids.count * h)
        if 4 * h * spec.vocabularySize <= largeWeightBytes {
            let embedding = try weights.weight(.embedding)
            for (i, id) in ids.enumerated() { for j in 0..<h { x[i * h + j] = embedding[id * h + j] } }
            return x
        }
        var rows: [Int: [Float]] = [:]
        for (i, id) in ids.enumerated() {
            if rows[id] == nil { rows[id] = try weights.weightRows(.embedding, id..<(id + 1)) }
            for j in 0..<h { x[i * h + j] = rows[id]![j] }
        }
        return x
    }

    /// Final norm and output head: logits [tokens × vocabulary]. A head larger than `largeWeightBytes` in f32 is
    /// decoded and multiplied a slice of the vocabulary at a time.
    public func head(_ hidden: [Float], tokens t: Int, largeWeightBytes: Int = LayerMajor.largeWeightBytes) throws -> [Float] {
        let h = spec.hiddenSize, vocabulary = spec.vocabularySize
        let x = DenseOps.normed(hidden, width: h, weight: try weights.weight(.finalNorm), epsilon: Float(spec.rmsNormEpsilon))
        let role: TensorRole = weights.has(.outputHead) ? .outputHead : .embedding
        let slice = max(largeWeightBytes / (4 * h), 1)
        // Unobserved, a head with a row decoder streams ~1 MiB slices through the product on every core (no
        // vocabulary-sized slice is allocated, decoded on one core and copied into the logits).
        if slice >= vocabulary || (observer == nil && weights.rowDecoder(role) != nil) {
            return try weights.project(x, tokens: t, inputs: h, role, outputs: vocabulary, observer: observer)
        }
        observer?.observe(role, input: x, rows: t, width: h)
        var input = x
        if let rounding = weights.dotInput(role), rounding != .f32, h % rounding.blockSize == 0 {
            input = DenseOps.rounded(x, rows: t, width: h, rounding)
        }
        var logits = [Float](repeating: 0, count: t * vocabulary)
        for start in stride(from: 0, to: vocabulary, by: slice) {
            let end = min(vocabulary, start + slice)
            let w = try weights.weightRows(role, start..<end)
            let y = DenseOps.linear(input, tokens: t, inputs: h, w, outputs: end - start)
            observer?.observeProduct(role, input: x, rows: t, width: h, weight: w, output: y)
            for i in 0..<t { for j in 0..<(end - start) { logits[i * vocabulary + start + j] = y[i * (end - start) + j] } }
        }
        return logits
    }

    /// Logits [tokens × vocabulary] for one causal window.
    public func logits(tokens ids: [Int]) throws -> [Float] {
        var x = try embed(ids)
        for layer in 0..<spec.layerCount { try self.layer(layer, &x, tokens: ids.count) }
        return try head(x, tokens: ids.count)
    }
}

/// The hidden states of a layer-major pass: in memory up to a byte budget, beyond it in a scratch file (one slot per
/// window, read and written back around each layer), so resident memory is the budget plus one window's state and one
/// layer's working set, whatever the number of windows.
public final class HiddenStates {
    public let sizes: [Int]
    private var resident: [[Float]?]
    private let offsets: [Int]
    private var scratch: PositionalFile?
    /// Windows kept in memory (the first ones); the rest live in the scratch file.
    public let residentCount: Int

    /// `sizes`: floats per window. A scratch file (deleted when done) is made in `directory` only when needed.
    public init(sizes: [Int], budget: Int, directory: String = NSTemporaryDirectory()) throws {
        self.sizes = sizes
        var used = 0, keep = 0
        while keep < sizes.count, used + 4 * sizes[keep] <= budget {
            used += 4 * sizes[keep]
            keep += 1
        }
        residentCount = keep
        resident = Array(repeating: nil, count: sizes.count)
        var offset = 0, offsets: [Int] = []
        for (w, size) in sizes.enumerated() {
            offsets.append(w < keep ? -1 : offset)
            if w >= keep { offset += 4 * size }
        }
        self.offsets = offsets
        if keep < sizes.count {
            let path = (directory as NSString).appendingPathComponent("moeq-hidden-\(UUID().uuidString).scratch")
            do {
                let file = try PositionalFile(path: path, access: .readWrite, create: true, exclusive: true)
                unlink(path)  // the open descriptor keeps it; nothing is left behind on exit
                try file.resize(to: offset)
                scratch = file
            } catch { throw EngineError.scratch("\(error)") }
        }
    }

    /// Bytes spilled to the scratch file.
    public var spilledBytes: Int { zip(sizes, offsets).filter { $0.1 >= 0 }.reduce(0) { $0 + 4 * $1.0 } }

    public func read(_ w: Int) throws -> [Float] {
        if w < residentCount { return resident[w] ?? [] }
        var values = [Float](repeating: 0, count: sizes[w])
        guard let scratch else { return values }
        do { try values.withUnsafeMutableBytes { try scratch.readExactly(into: $0, at: offsets[w]) } } catch {
            throw EngineError.scratch("\(error)")
        }
        return values
    }

    public func write(_ w: Int, _ values: [Float]) throws {
        if w < residentCount {
            resident[w] = values
            return
        }
        guard let scratch else { return }
        do { try values.withUnsafeBytes { try scratch.write($0, at: offsets[w]) } } catch { throw EngineError.scratch("\(error)") }
    }
}

/// Layer-major evaluation: the hidden states of all windows advance one layer at a time, so each layer's weights are
/// read (and decoded, through the provider's cache) once per pass rather than once per window.
public enum LayerMajor {
    /// A weight larger than this in f32 (a big vocabulary's embedding or head) is decoded in row slices, not whole.
    public static let largeWeightBytes = 256 << 20

    /// Default budget for the hidden states: a quarter of physical memory.
    public static var defaultBudget: Int { Int(ProcessInfo.processInfo.physicalMemory / 4) }

    /// Where a pass stands after a layer.
    public struct Step: Sendable {
        public let layer: Int, layers: Int
        /// Hidden states kept in the scratch file.
        public let spilledBytes: Int
        /// Stored weight bytes read so far in this pass (each layer's tensors once; embedding, final norm and head
        /// counted up front).
        public let bytesRead: Int
        /// Seconds since the pass started.
        public let seconds: Double
    }

    /// Called after each layer of a pass.
    public typealias Progress = (Step) -> Void

    /// Reads weights ahead on a thread of its own, while the current layer computes: once the device's queue is full,
    /// each MADV_WILLNEED waits for room (MappedFile.prefetch), which on the computing thread would hold the layer up.
    final class ReadAhead: @unchecked Sendable {
        private let queue = DispatchQueue(label: "moeq.layer-read-ahead", qos: .utility)

        /// Starts reading `regions` (in file order, so reads go out sequentially where the layout allows) and returns
        /// their size in bytes at once.
        func start(_ regions: [(file: MappedFile, bytes: Range<Int>)]) -> Int {
            let sorted = regions.sorted { $0.bytes.lowerBound < $1.bytes.lowerBound }
            queue.async { for region in sorted { region.file.prefetch(in: region.bytes) } }
            return regions.reduce(0) { $0 + $1.bytes.count }
        }

        /// Waits until every read asked for so far has been queued.
        func finish() { queue.sync {} }
    }

    /// Drops from the resident set every page mapped from the files holding layer `layer`'s weights (nil: embedding,
    /// final norm and head), once the pass is done with them: reads map cached pages around what they touch, and a
    /// model larger than RAM must not keep them (nor show them in `top`). The page cache keeps what the kernel can.
    /// `dropCached`: the layer's bytes also leave the page cache (a pass over weights larger than RAM, which the cache
    /// cannot keep for the next run anyway; see MappedFile.dropCached).
    public static func releaseMapped(_ weights: WeightProvider, layer: Int?, dropCached: Bool = false) {
        let regions = weights.regions(layer: layer)
        var seen = Set<ObjectIdentifier>()
        for region in regions where seen.insert(ObjectIdentifier(region.file)).inserted {
            region.file.releaseAll()
        }
        if dropCached { for region in regions { region.file.dropCached(in: region.bytes) } }
        weights.doneWithLayer(layer)
    }

    /// Whether the weights a pass reads are larger than half of physical memory: then the page cache cannot hold them
    /// for the pass (or the next run), and each layer is dropped from it once used.
    static func streamsBeyondMemory(_ weights: WeightProvider, layers: Int) -> Bool {
        var sizes: [ObjectIdentifier: Int] = [:]
        for layer in [nil] + (0..<layers).map(Optional.some) {
            for region in weights.regions(layer: layer) { sizes[ObjectIdentifier(region.file)] = region.file.size }
        }
        return sizes.values.reduce(0, +) > Int(ProcessInfo.processInfo.physicalMemory / 2)
    }

    /// The pass allocates and frees activation arrays of megabytes many times per layer; glibc would map and unmap
    /// each one (a page fault per 4 KiB on every reuse, and threads queueing on the process's mapping lock). Blocks up
    /// to 32 MiB are kept in the heap instead, and freed memory is not handed back until 1 GiB is free (set once).
    static let reuseFreedMemory: Void = { _ = moeq_keep_freed_memory(32 << 20, 1 << 30) }()

    /// Bytes of activations one token of a batch needs inside a layer: the residual stream and its normed copies, the
    /// attention projections, router scores and the copies routed to experts (an estimate from the spec's widths).
    public static func workingBytesPerToken(_ spec: ModelSpec) -> Int {
        let h = spec.hiddenSize, heads = spec.headCount
        let headWidth = spec.latentAttention.map { $0.noPositionHeadDim + $0.ropeHeadDim + $0.valueHeadDim } ?? 2 * spec.headDim
        let ff = spec.expertIntermediateSize, topK = max(spec.expertsPerToken, 1)
        let floats =
            6 * h + 3 * heads * headWidth + spec.routedExpertCount + topK * (2 * h + 3 * ff)
            + 3 * max(spec.intermediateSize, ff * max(spec.sharedExpertCount, 1))
        return 4 * floats
    }

    /// Activation bytes one batch may take inside a layer: a quarter of `budget` (at least 64 MiB), but no more than the
    /// tokens that give every routed expert about 256 rows to multiply (at least 2,048 tokens). A larger batch makes no
    /// product more efficient and only touches more fresh memory (on the bundled model, all 83 windows in one batch took
    /// 65 k page faults and 290 MB against 18 k and 92 MB in batches of 2,048 tokens). Batching changes no number.
    public static func batchWorkingBytes(_ spec: ModelSpec, budget: Int) -> Int {
        let perToken = workingBytesPerToken(spec)
        let enough = max(2048, 256 * max(spec.routedExpertCount, 1) / max(spec.expertsPerToken, 1))
        return min(max(budget / 4, 64 << 20), max(enough * perToken, 64 << 20))
    }

    /// Windows per batch: consecutive windows whose tokens together fit `workingBytes` (at least one window each).
    static func batches(_ counts: [Int], perToken: Int, workingBytes: Int) -> [Range<Int>] {
        let capacity = max(workingBytes / max(perToken, 1), 1)
        var batches: [Range<Int>] = [], start = 0, tokens = 0
        for (w, count) in counts.enumerated() {
            if w > start, tokens + count > capacity {
                batches.append(start..<w)
                start = w
                tokens = 0
            }
            tokens += count
        }
        if start < counts.count { batches.append(start..<counts.count) }
        return batches
    }

    /// The final hidden states of every window (before the final norm), layer after layer. Within a layer the windows
    /// run in batches (as many consecutive windows as `batchWorkingBytes` holds in working activations): each
    /// projection is one product over the whole batch, each routed expert runs once per batch on every token routed to
    /// it, attention stays within each window.
    /// `next`: what the caller reads after the pass, read ahead during its last layer (nil: this model's embedding and
    /// head when they were too large to read ahead at the start).
    public static func hiddenStates(
        _ engine: LayerForward, windows: [[Int]], budget: Int = defaultBudget, progress: Progress? = nil,
        next: [(file: MappedFile, bytes: Range<Int>)]? = nil
    ) throws -> HiddenStates {
        _ = reuseFreedMemory
        let started = Date()
        let states = try HiddenStates(sizes: windows.map { $0.count * engine.spec.hiddenSize }, budget: budget)
        let reader = ReadAhead()
        defer { reader.finish() }
        let beyondMemory = streamsBeyondMemory(engine.weights, layers: engine.spec.layerCount)
        // The embedding, final norm and head: read ahead now only when small. A large vocabulary is embedded row by
        // row (a few megabytes of it touched) and its head comes after the last layer, so it is read during that layer;
        // read now, it would be evicted by the layers' weights before the head needs it and read again.
        let outer = engine.weights.regions(layer: nil), outerBytes = outer.reduce(0) { $0 + $1.bytes.count }
        var bytesRead = (outerBytes <= largeWeightBytes ? reader.start(outer) : outerBytes) + reader.start(engine.weights.regions(layer: 0))
        for (w, window) in windows.enumerated() { try states.write(w, try engine.embed(window)) }
        releaseMapped(engine.weights, layer: nil)
        let h = engine.spec.hiddenSize, counts = windows.map(\.count)
        let groups = batches(
            counts, perToken: workingBytesPerToken(engine.spec), workingBytes: batchWorkingBytes(engine.spec, budget: budget))
        for layer in 0..<engine.spec.layerCount {
            // The next layer's weights are read from disk while this one computes.
            if layer + 1 < engine.spec.layerCount {
                bytesRead += reader.start(engine.weights.regions(layer: layer + 1))
            } else if let after = next ?? (outerBytes > largeWeightBytes ? outer : nil) {
                _ = reader.start(after)
            }
            for group in groups {
                var x: [Float] = []
                x.reserveCapacity(counts[group].reduce(0, +) * h)
                for w in group { x += try states.read(w) }
                try engine.layer(layer, &x, windows: Array(counts[group]))
                var row = 0
                for w in group {
                    try states.write(w, Array(x[(row * h)..<((row + counts[w]) * h)]))
                    row += counts[w]
                }
            }
            releaseMapped(engine.weights, layer: layer, dropCached: beyondMemory)
            progress?(
                Step(
                    layer: layer, layers: engine.spec.layerCount, spilledBytes: states.spilledBytes, bytesRead: bytesRead,
                    seconds: Date().timeIntervalSince(started)))
        }
        return states
    }

    /// Logits of every window, computed layer-major; `each` receives window w's logits in window order, so the caller
    /// keeps one window's logits at a time.
    public static func forEachLogits(
        weights: WeightProvider, windows: [[Int]], observer: ActivationObserver? = nil, budget: Int = defaultBudget,
        _ each: (Int, [Float]) throws -> Void
    ) throws {
        var engine = try ReferenceModel.engine(weights: weights)
        engine.observer = observer
        let states = try hiddenStates(engine, windows: windows, budget: budget)
        for w in windows.indices { try each(w, try engine.head(try states.read(w), tokens: windows[w].count)) }
        releaseMapped(weights, layer: nil)
    }
}
