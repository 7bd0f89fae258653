// `moeq inspect`'s model: a checkpoint's headers, its config and its parameter accounting, as data.
import Foundation
import TensorFormats

/// Everything `inspect` reports about a checkpoint, gathered from headers and config.json only.
public struct CheckpointInspection: Sendable {
    public let path: String
    public let checkpoint: Checkpoint
    /// nil when no config.json sits beside the weights (then only the tensor table is known).
    public let spec: ModelSpec?
    public let report: ParameterReport?

    public init(path: String) throws {
        self.path = path
        checkpoint = try Checkpoint(path: path)
        let configPath = (checkpoint.directory as NSString).appendingPathComponent("config.json")
        if FileManager.default.fileExists(atPath: configPath) {
            let spec = try ModelSpec(configFile: configPath)
            self.spec = spec
            report = try ParameterReport(spec: spec, checkpoint: checkpoint)
        } else {
            spec = nil
            report = nil
        }
    }

    /// One row of the tensor table.
    public struct TensorRow: Sendable {
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        public let role: String
        public let file: String
        public let byteOffset: Int
        public let byteCount: Int
    }

    /// Tensors whose names match the shell glob `pattern` (all when nil).
    public func tensorRows(matching pattern: String?) -> [TensorRow] {
        let classifier = spec?.tensorLayout
        return checkpoint.tensors.compactMap { location in
            if let pattern, fnmatch(pattern, location.name, 0) != 0 { return nil }
            let role = classifier.map { CheckpointInspection.roleName($0.classify(location.name)) } ?? "-"
            return TensorRow(
                name: location.name, dtype: location.info.dtype, shape: location.info.shape, role: role,
                file: (location.file.path as NSString).lastPathComponent,
                byteOffset: location.file.fileOffset(of: location.info), byteCount: location.info.byteCount)
        }
    }

    /// A short, stable role label: `routed_expert[l=3,e=17].down`, `attention[l=0].kv_b`, `router_bias[l=5]`…
    public static func roleName(_ tensor: ClassifiedTensor) -> String {
        let base: String
        switch tensor.role {
        case .embedding: base = "embedding"
        case .outputHead: base = "lm_head"
        case .finalNorm: base = "final_norm"
        case .attentionNorm(let l): base = "attention_norm[l=\(l)]"
        case .feedForwardNorm(let l): base = "ffn_norm[l=\(l)]"
        case .attention(let l, let part): base = "attention[l=\(l)].\(part.rawValue)"
        case .router(let l): base = "router[l=\(l)]"
        case .routerBias(let l): base = "router_bias[l=\(l)]"
        case .routedExpert(let l, let e, let p): base = "routed_expert[l=\(l),e=\(e)].\(p.rawValue)"
        case .routedExperts(let l, let p): base = "routed_experts[l=\(l)].\(p.rawValue)"
        case .sharedExpert(let l, let p): base = "shared_expert[l=\(l)].\(p.rawValue)"
        case .denseFeedForward(let l, let p): base = "dense_ffn[l=\(l)].\(p.rawValue)"
        case .nextTokenPrediction(let l, let part): base = "mtp[l=\(l)]" + (part == .block ? "" : ".\(part.rawValue)")
        case .unknown: base = "unknown"
        }
        switch tensor.part {
        case .weight, .bias: return base
        default: return base + " (" + tensor.part.rawValue + ")"
        }
    }

    // MARK: - JSON

    /// The `--json` document.
    public func json(tensorGlob: String?, includeTensors: Bool) -> JSONValue {
        var root = JSONObject()
        root["path"] = .string(path)
        root["files"] = .integer(Int64(checkpoint.files.count))
        root["tensors"] = .integer(Int64(checkpoint.tensors.count))
        root["file_bytes"] = .integer(Int64(checkpoint.totalFileBytes))
        if let spec {
            root["model"] = CheckpointInspection.specJSON(spec)
        }
        if let report {
            var parameters = JSONObject()
            parameters["total"] = .integer(Int64(report.totalParameters))
            parameters["active_per_token"] = .integer(Int64(report.activeParameters))
            parameters["buffers"] = .integer(Int64(report.bufferElements))
            parameters["mtp"] = .integer(Int64(report.nextTokenPredictionParameters))
            var byRole = JSONObject()
            for category in RoleCategory.allCases
            where report.parametersByCategory[category] != nil || report.bytesByCategory[category] != nil {
                byRole[category.rawValue] = [
                    "parameters": .integer(Int64(report.parametersByCategory[category] ?? 0)),
                    "bytes": .integer(Int64(report.bytesByCategory[category] ?? 0)),
                ]
            }
            parameters["by_role"] = .object(byRole)
            root["parameters"] = .object(parameters)
            var byDType = JSONObject()
            for dtype in SafetensorsDType.allCases {
                if let bytes = report.bytesByDType[dtype] { byDType[dtype.rawValue] = .integer(Int64(bytes)) }
            }
            root["bytes_by_dtype"] = .object(byDType)
            root["unknown_tensors"] = .array(report.unknownTensors.map { .string($0) })
        } else {
            var byDType = JSONObject()
            var totals: [SafetensorsDType: Int] = [:]
            for location in checkpoint.tensors { totals[location.info.dtype, default: 0] += location.info.byteCount }
            for dtype in SafetensorsDType.allCases { if let bytes = totals[dtype] { byDType[dtype.rawValue] = .integer(Int64(bytes)) } }
            root["bytes_by_dtype"] = .object(byDType)
        }
        if includeTensors {
            root["tensor_table"] = .array(
                tensorRows(matching: tensorGlob).map { row in
                    [
                        "name": .string(row.name), "dtype": .string(row.dtype.rawValue),
                        "shape": .array(row.shape.map { .integer(Int64($0)) }),
                        "role": .string(row.role), "file": .string(row.file), "offset": .integer(Int64(row.byteOffset)),
                        "bytes": .integer(Int64(row.byteCount)),
                    ]
                })
        }
        return .object(root)
    }

    static func specJSON(_ spec: ModelSpec) -> JSONValue {
        var model = JSONObject()
        model["model_type"] = .string(spec.modelType)
        model["architecture"] = .string(spec.architecture.rawValue)
        model["layers"] = .integer(Int64(spec.layerCount))
        model["moe_layers"] = .integer(Int64(spec.moeLayerCount))
        model["dense_layers"] = .integer(Int64(spec.layerCount - spec.moeLayerCount))
        model["mtp_layers"] = .integer(Int64(spec.nextTokenPredictionLayers))
        model["hidden_size"] = .integer(Int64(spec.hiddenSize))
        model["vocab_size"] = .integer(Int64(spec.vocabularySize))
        model["attention"] =
            spec.latentAttention.map { mla in
                [
                    "kind": "mla", "heads": .integer(Int64(spec.headCount)),
                    "q_lora_rank": mla.queryRank.map { .integer(Int64($0)) } ?? nil,
                    "kv_lora_rank": .integer(Int64(mla.keyValueRank)), "rope_head_dim": .integer(Int64(mla.ropeHeadDim)),
                ]
            } ?? [
                "kind": "gqa", "heads": .integer(Int64(spec.headCount)), "kv_heads": .integer(Int64(spec.keyValueHeadCount)),
                "head_dim": .integer(Int64(spec.headDim)),
            ]
        model["experts"] = [
            "routed": .integer(Int64(spec.routedExpertCount)), "shared": .integer(Int64(spec.sharedExpertCount)),
            "used_per_token": .integer(Int64(spec.expertsPerToken)), "expert_ffn": .integer(Int64(spec.expertIntermediateSize)),
            "router": .string(spec.routerScoring.rawValue),
        ]
        model["rope_theta"] = .double(spec.ropeTheta)
        model["rope_scaling"] = spec.ropeScaling.map { .string("\($0.type) ×\($0.factor)") } ?? nil
        model["dtype"] = spec.dtype.map { .string($0) } ?? nil
        model["source_quantization"] = .string(spec.quantization.summary)
        return .object(model)
    }
}
