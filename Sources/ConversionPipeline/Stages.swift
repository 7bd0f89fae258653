// The pipeline as stage plugins: each stage declares what it needs, says what it would do (`plan`, for dry runs)
// and does it (`run`). A registry holds the built-ins; other modules register more (the moeq tool adds `validate`,
// which needs the reference engine). `moeq pipeline FILE` runs the stages a recipe file asks for.
//
// Conversion streams: decode, repack-experts and quantize settle everything per tensor at plan time (source
// encodings, the stacked expert layout, every type and byte offset) and then run fused inside `write`, one unit
// (a tensor, one expert's slice at a time) after another, so no stage ever holds a whole model.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// What a stage needs before it can run.
public enum StageNeed: String, Sendable {
    case checkpoint, plan, output, calibrationText = "calibration text"
}

/// Shared state the stages read and fill in, in order.
public final class PipelineContext {
    public let recipe: RecipeFile
    public let threads: Int
    public var plan: ConversionPlan?
    public var written: ConversionSummary?
    /// One JSON object per stage that ran (or planned), for the final report.
    public var report: [(stage: String, result: JSONValue)] = []

    public init(recipe: RecipeFile, threads: Int) {
        self.recipe = recipe
        self.threads = threads
    }

    public var source: String? { recipe.source }
    public var output: String? { recipe.output }

    func requirePlan(_ stage: String) throws -> ConversionPlan {
        guard let plan else { throw PipelineError.missing(stage: stage, need: .plan) }
        return plan
    }
}

public enum PipelineError: Error, Sendable, CustomStringConvertible {
    case missing(stage: String, need: StageNeed)
    case unknownStage(String)
    public var description: String {
        switch self {
        case let .missing(stage, need): "stage \(stage) needs \(need.rawValue), which the recipe file or an earlier stage does not provide"
        case .unknownStage(let name): "no stage named \(name) (registered: \(StageRegistry.names.joined(separator: ", ")))"
        }
    }
}

public protocol Stage: Sendable {
    var name: String { get }
    var summary: String { get }
    var needs: [StageNeed] { get }
    /// What the stage would do, computed from headers and the plan only; nothing is written.
    func plan(_ context: PipelineContext) throws -> JSONValue
    /// Does it.
    func run(_ context: PipelineContext) throws -> JSONValue
}

extension Stage {
    /// Stages whose work is all planning (or fused into `write`) run by planning.
    public func run(_ context: PipelineContext) throws -> JSONValue { try plan(context) }
}

public enum StageRegistry {
    nonisolated(unsafe) private static var stages: [Stage] = [SourceStage(), DecodeStage(), RepackExpertsStage(), QuantizeStage(), WriteStage(), VerifyStage(), ReportStage()]

    public static func register(_ stage: Stage) {
        stages.removeAll { $0.name == stage.name }
        stages.append(stage)
    }

    public static var names: [String] { stages.map(\.name) }
    public static var all: [Stage] { stages }

    public static func stage(named name: String) throws -> Stage {
        guard let stage = stages.first(where: { $0.name == name }) else { throw PipelineError.unknownStage(name) }
        return stage
    }

    /// The stages a recipe file implies, in order: conversion always; validate when it has a `validate` section.
    public static func pipeline(for recipe: RecipeFile) throws -> [Stage] {
        var names = ["source", "decode", "repack-experts", "quantize", "write", "verify"]
        if recipe.validate != nil { names.append("validate") }
        names.append("report")
        return try names.map(stage(named:))
    }

    /// Checks each stage's needs against what the recipe and the stages before it provide, then plans (dry run) or
    /// runs every stage. `each(stage, result)` follows each one.
    public static func execute(_ stages: [Stage], context: PipelineContext, dryRun: Bool,
                               each: (Stage, JSONValue) -> Void = { _, _ in }) throws {
        var provided: Set<StageNeed> = []
        if context.source != nil { provided.insert(.checkpoint) }
        if context.output != nil { provided.insert(.output) }
        if context.recipe.validate != nil { provided.insert(.calibrationText) }
        for stage in stages {
            for need in stage.needs where !provided.contains(need) { throw PipelineError.missing(stage: stage.name, need: need) }
            if stage.name == "source" { provided.insert(.plan) }
        }
        for stage in stages {
            let result = try dryRun ? stage.plan(context) : stage.run(context)
            context.report.append((stage.name, result))
            each(stage, result)
        }
    }
}

// MARK: - Built-in stages

struct SourceStage: Stage {
    let name = "source", summary = "Open the checkpoint (headers only), read config.json, plan the output layout with the recipe's types."
    let needs: [StageNeed] = [.checkpoint, .output]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        guard let source = context.source else { throw PipelineError.missing(stage: name, need: .checkpoint) }
        let importance = try context.recipe.imatrix.map { try ImportanceMatrix(path: $0) }
        let plan = try GGUFConversion.plan(path: source, recipe: context.recipe.base, importance: importance, rules: context.recipe)
        context.plan = plan
        return ["checkpoint": .string(source), "model_type": .string(plan.spec.modelType), "tensors_in": .integer(Int64(plan.checkpoint.tensors.count)),
                "source_bytes": .integer(Int64(plan.sourceBytes)), "warnings": .array(plan.warnings.map { .string($0) })]
    }
}

struct DecodeStage: Stage {
    let name = "decode", summary = "Decode source weights to f32 row ranges (BF16/F16/F32, FP8 with block scales, compressed-tensors INT4); runs per unit inside write."
    let needs: [StageNeed] = [.plan]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        var byDtype: [String: Int] = [:]
        for tensor in plan.checkpoint.tensors { byDtype[tensor.info.dtype.rawValue, default: 0] += tensor.info.byteCount }
        return ["source_bytes_by_dtype": .object(JSONObject(byDtype.sorted { $0.key < $1.key }.map { ($0.key, .integer(Int64($0.value))) }))]
    }
}

struct RepackExpertsStage: Stage {
    let name = "repack-experts", summary = "Lay routed experts out for the target: stacked 3-D tensors per layer and projection (llama.cpp); runs per expert slice inside write."
    let needs: [StageNeed] = [.plan]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        var stacked = 0, experts = 0
        for tensor in plan.tensors { if case .stacked(let names) = tensor.source { stacked += 1; experts += names.count } }
        return ["layout": "stacked", "stacked_tensors": .integer(Int64(stacked)), "expert_matrices": .integer(Int64(experts))]
    }
}

struct QuantizeStage: Stage {
    let name = "quantize", summary = "Choose every tensor's type (named recipe, then the recipe file's rules; llama-quantize's width fallbacks) and quantize per chunk inside write."
    let needs: [StageNeed] = [.plan]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        var bytes: [QuantType: Int] = [:], counts: [QuantType: Int] = [:]
        for info in plan.layout.tensors { bytes[info.type, default: 0] += info.byteCount; counts[info.type, default: 0] += 1 }
        return ["base_recipe": .string(plan.recipe.rawValue), "rules": .integer(Int64(context.recipe.rules.count)),
                "types": .object(JSONObject(QuantType.allCases.compactMap { t in counts[t].map { (t.rawValue, ["tensors": .integer(Int64($0)), "bytes": .integer(Int64(bytes[t] ?? 0))]) } }))]
    }
}

struct WriteStage: Stage {
    let name = "write", summary = "Write the GGUF: positioned writes of each unit into a temp file, journal, fsync + rename, manifest."
    let needs: [StageNeed] = [.plan, .output]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        return ["format": "gguf", "output": .string(context.output ?? ""), "bytes": .integer(Int64(plan.layout.fileSize)),
                "tensors": .integer(Int64(plan.tensors.count))]
    }
    func run(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        guard let output = context.output else { throw PipelineError.missing(stage: name, need: .output) }
        let summary = try GGUFConversion.run(plan, output: output, threads: context.threads)
        context.written = summary
        return ["output": .string(output), "bytes": .integer(Int64(summary.outputBytes)), "seconds": .double(summary.seconds),
                "bits_per_weight": .double(summary.bitsPerWeight)]
    }
}

struct VerifyStage: Stage {
    let name = "verify", summary = "Re-read the written file and check its header and every tensor against the manifest's XXH3."
    let needs: [StageNeed] = [.output]
    func plan(_ context: PipelineContext) throws -> JSONValue { ["would_check": .string(OutputManifest.path(for: context.output ?? ""))] }
    func run(_ context: PipelineContext) throws -> JSONValue {
        guard let output = context.output else { throw PipelineError.missing(stage: name, need: .output) }
        let manifest = try OutputManifest(reading: output)
        let bad = try manifest.verify()
        guard bad.isEmpty else { throw ConversionError.verification(file: output, tensors: bad) }
        return ["tensors_checked": .integer(Int64(manifest.tensors.count))]
    }
}

struct ReportStage: Stage {
    let name = "report", summary = "Summarize every stage's result."
    let needs: [StageNeed] = []
    func plan(_ context: PipelineContext) throws -> JSONValue { ["stages": .array(context.report.map { .string($0.stage) })] }
}
