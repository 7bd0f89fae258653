// Counts a checkpoint's parameters and bytes by role and dtype from headers alone: total, active per token,
// and what each part of the model costs.
import TensorFormats

/// Parameter and byte totals of a checkpoint.
public struct ParameterReport: Sendable {
    /// Trainable parameters of the main layers, as PyTorch's `sum(p.numel() for p in model.parameters())`
    /// counts them: logical (dequantized) elements, excluding MTP layers and non-trainable buffers.
    public var totalParameters = 0
    /// Parameters read per token: everything always on, plus the top-k routed experts of each MoE layer.
    public var activeParameters = 0
    /// Elements of non-trainable buffers stored in the checkpoint (DeepSeek's router `e_score_correction_bias`).
    public var bufferElements = 0
    /// Parameters of multi-token-prediction layers (not loaded for inference by transformers or llama.cpp).
    public var nextTokenPredictionParameters = 0
    public var parametersByCategory: [RoleCategory: Int] = [:]
    /// Stored bytes (quantization companions included) by category.
    public var bytesByCategory: [RoleCategory: Int] = [:]
    public var bytesByDType: [SafetensorsDType: Int] = [:]
    /// Distinct routed experts seen per MoE layer.
    public var routedExpertsPerLayer: [Int: Int] = [:]
    /// Names that matched no role: reported, never dropped.
    public var unknownTensors: [String] = []
    public var storedTensorCount = 0
    public var logicalWeightCount = 0
    public var totalBytes: Int { bytesByDType.values.reduce(0, +) }
}

extension ParameterReport {
    /// Accounts for every tensor of `checkpoint` under `spec`. Reads headers only.
    public init(spec: ModelSpec, checkpoint: Checkpoint) throws(FormatError) {
        let classifier = spec.tensorLayout
        let weights = try WeightResolver(checkpoint: checkpoint, quantization: spec.quantization).allWeights()
        storedTensorCount = checkpoint.tensors.count
        logicalWeightCount = weights.count

        var routedByLayer: [Int: Int] = [:]
        var expertsSeen: [Int: Set<Int>] = [:]
        var fusedExperts: [Int: Int] = [:]
        // Every stored tensor belongs to exactly one logical weight, so one classification per weight covers
        // bytes (companions included) and parameters.
        for weight in weights {
            let classified = classifier.classify(weight.name)
            let count = weight.elementCount
            for stored in weight.storedTensors {
                bytesByDType[stored.info.dtype, default: 0] += stored.info.byteCount
                bytesByCategory[classified.role.category, default: 0] += stored.info.byteCount
            }
            if case .unknown = classified.role { unknownTensors.append(weight.name) }
            switch classified.role {
            case .routerBias:
                bufferElements += count
                continue
            case .nextTokenPrediction:
                nextTokenPredictionParameters += count
                continue
            case .routedExpert(let layer, let expert, _):
                routedByLayer[layer, default: 0] += count
                expertsSeen[layer, default: []].insert(expert)
            case .routedExperts(let layer, _):
                routedByLayer[layer, default: 0] += count
                fusedExperts[layer] = weight.shape.first ?? spec.routedExpertCount
            default:
                break
            }
            totalParameters += count
            parametersByCategory[classified.role.category, default: 0] += count
        }
        for (layer, experts) in expertsSeen { routedExpertsPerLayer[layer] = experts.count }
        for (layer, experts) in fusedExperts { routedExpertsPerLayer[layer] = experts }

        let routedTotal = routedByLayer.values.reduce(0, +)
        activeParameters = totalParameters - routedTotal
        for (layer, parameters) in routedByLayer {
            let experts = max(routedExpertsPerLayer[layer] ?? spec.routedExpertCount, 1)
            activeParameters += parameters / experts * min(spec.expertsPerToken, experts)
        }
    }
}
