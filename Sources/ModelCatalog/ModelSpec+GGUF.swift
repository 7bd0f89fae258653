// GGUF header → ModelSpec: llama.cpp's hyper-parameter keys (formats.md §5.4) turned back into the config.json
// fields they came from, so `moeq plan` and the engine can read a GGUF without its checkpoint. The keys each
// architecture reads are in its table; the result goes through the same range checks as a config.json.
import TensorFormats

/// Typed access to one GGUF header's hyper-parameters, for the architecture tables.
public struct GGUFHeaderReader: Sendable {
    public let file: GGUFFile
    /// `general.architecture`.
    public let architecture: String

    public func int(_ key: ModelKey) -> Int? { file[key, architecture: architecture]?.integerValue }

    public func double(_ key: ModelKey) -> Double? {
        switch file[key, architecture: architecture] {
        case .float32(let v)?: Double(v)
        case .float64(let v)?: v
        default: nil
        }
    }

    public func bool(_ key: ModelKey) -> Bool? {
        if case .bool(let v)? = file[key, architecture: architecture] { return v }
        return nil
    }

    public func required(_ key: ModelKey) throws(CatalogError) -> Int {
        guard let value = int(key) else { throw .missingField(file: file.path, field: key.key(architecture).rawValue) }
        return value
    }

    public func hasTensor(_ name: String) -> Bool { file.tensor(named: name) != nil }
    public func dimensions(of name: String) -> [Int]? { file.tensor(named: name)?.dimensions }
}

extension ModelSpec {
    /// The spec of a GGUF written by llama.cpp's converter or by `moeq convert`. Reads the header only.
    public init(gguf file: GGUFFile) throws(CatalogError) {
        let path = file.path
        guard let arch = file[GGUFKey.architecture]?.stringValue else {
            throw .missingField(file: path, field: GGUFKey.architecture.rawValue)
        }
        guard let table = Architecture.allCases.map(\.table).first(where: { $0.ggufArchitecture == arch }) else {
            throw .unsupportedModelType(
                file: path, modelType: "\(arch) (GGUF \(GGUFKey.architecture))",
                supported: Architecture.allCases.map(\.table.ggufArchitecture))
        }
        let header = GGUFHeaderReader(file: file, architecture: arch)
        let specific = try table.configFromGGUF(header)
        let embedding = table.fileName(.embedding)
        let hidden = try header.required(.embeddingLength)
        let heads = try header.required(.headCount)
        guard let vocabulary = header.int(.vocabularySize) ?? embedding.flatMap(header.dimensions)?.last else {
            throw .missingField(file: path, field: ModelKey.vocabularySize.key(arch).rawValue)
        }
        var config: [(String, JSONValue)] = [
            ("hidden_size", .integer(Int64(hidden))), ("num_attention_heads", .integer(Int64(heads))),
            ("vocab_size", .integer(Int64(vocabulary))), ("max_position_embeddings", .integer(Int64(header.int(.contextLength) ?? 0))),
            ("rope_theta", .double(header.double(.ropeFrequencyBase) ?? 10_000)),
            ("rms_norm_eps", .double(header.double(.layerNormRMSEpsilon) ?? 1e-6)),
            ("tie_word_embeddings", .bool(!(table.fileName(.outputHead).map(header.hasTensor) ?? false))),
            ("num_experts_per_tok", .integer(Int64(try header.required(.expertUsedCount)))),
            ("num_hidden_layers", .integer(Int64(try header.required(.blockCount)))),
        ]
        config += specific
        // A later pair wins: an architecture may restate a common field (GLM-4.5's block count includes its MTP layer).
        var merged = JSONObject()
        for (key, value) in config { merged[key] = value }
        try self.init(config: .object(merged), file: path)
    }
}

extension ArchitectureTable {
    /// The GGUF name of a model-scope tensor, or of a per-layer one at `layer` (for header-only checks).
    public func fileName(_ kind: RoleKind, layer: Int = 0, part: TensorPart = .weight) -> String? {
        var everything = ModelSpec()
        everything.architecture = architecture
        everything.attentionBias = true
        everything.queryKeyNorm = true
        let template = fileTensors(everything).first { $0.kind == kind && $0.part == part }
        return template.map { NamePattern.format($0.pattern, layer: layer, expert: nil) }
    }
}
