// One tensor of the GGUF a spec converts to: its name, ggml shape, role, and which checkpoint tensors its rows come
// from (derived from the architecture's table by TensorLayout).

/// How one GGUF tensor's rows come from checkpoint tensors. Rows are ggml rows (ne0 values each).
public enum GGUFSource: Sendable, Equatable {
    /// One checkpoint weight, rows in order.
    case weight(String)
    /// One weight with llama's rope row permutation for `heads` heads (Mixtral q/k).
    case ropePermuted(String, heads: Int)
    /// Experts stacked along ne2, expert e from `names[e]`.
    case stacked(ExpertNames)
    /// MLA `attn_k_b`: per head, the transposed first `noPosition` rows of kv_b_proj.
    case keyFromKVB(String, heads: Int, noPosition: Int, value: Int)
    /// MLA `attn_v_b`: per head, the last `value` rows of kv_b_proj.
    case valueFromKVB(String, heads: Int, noPosition: Int, value: Int)
    /// Experts fused in one checkpoint tensor per layer (gpt-oss), expert e's rows where `view` says.
    case fusedExperts(String, FusedExpertView)
    /// −exp of each value of one weight (Kimi-Linear's per-head decay from its log).
    case negatedExponential(String)

    /// Every checkpoint weight the rows come from.
    public var names: [String] {
        switch self {
        case .weight(let n), .ropePermuted(let n, _), .keyFromKVB(let n, _, _, _), .valueFromKVB(let n, _, _, _), .fusedExperts(let n, _),
            .negatedExponential(let n):
            [n]
        case .stacked(let names): Array(names)
        }
    }
}

/// One tensor of the GGUF file.
public struct GGUFTensorPlan: Sendable, Equatable {
    public let name: String
    /// ggml dimensions, ne0 first.
    public let dimensions: [Int]
    public let source: GGUFSource
    public let role: TensorRole
    public let part: TensorPart

    public init(name: String, dimensions: [Int], source: GGUFSource, role: TensorRole, part: TensorPart) {
        self.name = name
        self.dimensions = dimensions
        self.source = source
        self.role = role
        self.part = part
    }

    /// Layer index for per-layer tensors.
    public var layer: Int? { role.layer }
    /// llama-quantize quantizes only ≥2-D weights that are not routers (norms and biases are 1-D or biases).
    /// llama-quantize leaves routers, Kimi-Linear's short convolutions and its per-head decay
    /// as they are.
    public var quantizable: Bool {
        guard dimensions.count >= 2, part == .weight, role.category != .router else { return false }
        if case .attention(_, let part) = role, [.convQuery, .convKey, .convValue, .decayLog].contains(part) { return false }
        return true
    }

    /// The dimensions llama-quantize writes: ggml_n_dims, trailing 1s dropped (Kimi-Linear's decay {1, n, 1, 1} → {1, n}).
    public var trimmedDimensions: [Int] {
        var dims = dimensions
        while dims.count > 1, dims.last == 1 { dims.removeLast() }
        return dims
    }
    public var rowWidth: Int { dimensions[0] }
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
}
