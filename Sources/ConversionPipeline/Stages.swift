// The pipeline as stage plugins: each stage declares what it needs, says what it would do (`plan`, for dry runs) and
// does it (`run`). A registry holds the built-ins; other modules register more (the moeq tool adds `validate`, which
// needs the reference engine); a recipe file's `stages:` list picks which run, so any stage can be swapped.
//
// Conversion streams: `source` plans the layout; `decode`, `repack-experts` and `quantize` install the transforms the
// runner applies to every unit (the row decoder, the output layout of the routed experts, the row quantizer); `write`
// runs the units through them one after another, so no stage ever holds a whole model.
import Foundation
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats

/// What a stage needs before it can run.
public enum StageNeed: String, Sendable {
    case checkpoint, plan, output, calibrationText = "calibration text", decoder, quantizer, layout
    case writtenFile = "a written file"
}

/// Shared state the stages read and fill in, in order.
public final class PipelineContext {
    public let recipe: RecipeFile
    public let threads: Int
    public var plan: ConversionPlan?
    /// The transforms the runner applies to every unit (installed by decode and quantize).
    public var transforms = UnitTransforms()
    /// How routed experts are laid out (installed by repack-experts).
    public var layout = OutputLayout.stacked
    public var written: ConversionSummary?
    /// One JSON object per stage that ran (or planned), for the final report.
    public var report: [(stage: String, result: JSONValue)] = []
    /// Polled by long stages; true stops them with their work kept for --resume.
    public var cancelled: @Sendable () -> Bool = { false }

    public init(recipe: RecipeFile, threads: Int) {
        self.recipe = recipe
        self.threads = threads
    }

    public var source: String? { recipe.source }
    public var output: String? { recipe.output }

    public func requirePlan(_ stage: String) throws -> ConversionPlan {
        guard let plan else { throw PipelineError.missing(stage: stage, need: .plan) }
        return plan
    }
}

public enum PipelineError: Error, Sendable, CustomStringConvertible {
    case missing(stage: String, need: StageNeed)
    case unknownStage(String)
    case invalidStages(file: String, reason: String)
    public var description: String {
        switch self {
        case let .missing(stage, need): "stage \(stage) needs \(need.rawValue), which the recipe file or an earlier stage does not provide"
        case .unknownStage(let name): "no stage named \(name) (registered: \(StageRegistry.names.joined(separator: ", ")))"
        case let .invalidStages(file, reason): "\(file): stages: \(reason)"
        }
    }
}

public protocol Stage: Sendable {
    var name: String { get }
    var summary: String { get }
    var needs: [StageNeed] { get }
    /// What the stage provides to the stages after it.
    var provides: [StageNeed] { get }
    /// What the stage would do, computed from headers and the plan only; nothing is written.
    func plan(_ context: PipelineContext) throws -> JSONValue
    /// Does it.
    func run(_ context: PipelineContext) throws -> JSONValue
}

extension Stage {
    public var provides: [StageNeed] { [] }
}

public enum StageRegistry {
    nonisolated(unsafe) private static var stages: [Stage] = [
        SourceStage(), DecodeStage(), RepackExpertsStage(), QuantizeStage(), QuantizeStage(reference: true), WriteStage(), VerifyStage(),
        ReportStage(),
    ]

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

    /// The stages a recipe file implies, in order: its `stages:` list, else the conversion's, plus validate when it has a
    /// `validate` section, then report.
    public static func pipeline(for recipe: RecipeFile) throws -> [Stage] {
        if let names = recipe.stages {
            guard !names.isEmpty else {
                throw PipelineError.invalidStages(file: recipe.path, reason: "the list is empty; name the stages to run, in order")
            }
            var seen: Set<String> = []
            for name in names where !seen.insert(name).inserted {
                throw PipelineError.invalidStages(file: recipe.path, reason: "\(name) is listed twice; each stage runs once")
            }
            return try names.map(stage(named:))
        }
        var names = ["source", "decode", "repack-experts", "quantize", "write", "verify"]
        if recipe.validate != nil { names.append("validate") }
        names.append("report")
        return try names.map(stage(named:))
    }

    /// Checks each stage's needs against what the recipe and the stages before it provide, then plans (dry run) or
    /// runs every stage. `each(stage, result)` follows each one.
    public static func execute(
        _ stages: [Stage], context: PipelineContext, dryRun: Bool,
        each: (Stage, JSONValue) -> Void = { _, _ in }
    ) throws {
        var provided: Set<StageNeed> = []
        if context.source != nil { provided.insert(.checkpoint) }
        if context.output != nil { provided.insert(.output) }
        if context.recipe.validate != nil { provided.insert(.calibrationText) }
        for stage in stages {
            for need in stage.needs where !provided.contains(need) {
                throw PipelineError.invalidStages(
                    file: context.recipe.path,
                    reason: "stage \(stage.name) needs \(need.rawValue), which neither the recipe file nor an earlier stage provides")
            }
            provided.formUnion(stage.provides)
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
    let name = "source",
        summary =
            """
            Open the checkpoint (headers only), read config.json, check the weights against it, plan the output layout with the \
            recipe's types.
            """
    let needs: [StageNeed] = [.checkpoint, .output]
    let provides: [StageNeed] = [.plan]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        guard let source = context.source else { throw PipelineError.missing(stage: name, need: .checkpoint) }
        let importance = try context.recipe.imatrix.map { try ImportanceMatrix(path: $0) }
        let plan = try GGUFConversion.plan(path: source, recipe: context.recipe.base, importance: importance, rules: context.recipe)
        context.plan = plan
        return [
            "checkpoint": .string(source), "model_type": .string(plan.spec.modelType),
            "tensors_in": .integer(Int64(plan.checkpoint.tensors.count)),
            "source_bytes": .integer(Int64(plan.sourceBytes)), "warnings": .array(plan.warnings.map { .string($0) }),
        ]
    }
    func run(_ context: PipelineContext) throws -> JSONValue { try plan(context) }
}

struct DecodeStage: Stage {
    let name = "decode",
        summary =
            "Install the row decoder (BF16/F16/F32, FP8 with block scales, compressed-tensors INT4 → f32) that write applies to every unit."
    let needs: [StageNeed] = [.plan]
    let provides: [StageNeed] = [.decoder]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        var byDtype: [String: Int] = [:]
        for tensor in plan.checkpoint.tensors { byDtype[tensor.info.dtype.rawValue, default: 0] += tensor.info.byteCount }
        return [
            "decoder": .string(SourceDecoder().name),
            "source_bytes_by_dtype": .object(JSONObject(byDtype.sorted { $0.key < $1.key }.map { ($0.key, .integer(Int64($0.value))) })),
        ]
    }
    func run(_ context: PipelineContext) throws -> JSONValue {
        context.transforms.decoder = SourceDecoder()
        return try plan(context)
    }
}

struct RepackExpertsStage: Stage {
    let name = "repack-experts",
        summary =
            """
            Choose how routed experts are laid out (the recipe's `layout`: stacked 3-D tensors, llama.cpp's split pair, or \
            expert-major with a pack) for write.
            """
    let needs: [StageNeed] = [.plan]
    let provides: [StageNeed] = [.layout]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        let layout = OutputLayout(rawValue: context.recipe.layout ?? "stacked") ?? .stacked
        var stacked = 0, experts = 0
        for tensor in plan.tensors { if case .stacked(let names) = tensor.source { stacked += 1; experts += names.count } }
        return [
            "layout": .string(layout.rawValue), "stacked_tensors": .integer(Int64(stacked)), "expert_matrices": .integer(Int64(experts)),
        ]
    }
    func run(_ context: PipelineContext) throws -> JSONValue {
        context.layout = OutputLayout(rawValue: context.recipe.layout ?? "stacked") ?? .stacked
        return try plan(context)
    }
}

struct QuantizeStage: Stage {
    /// The plain scalar ports of ggml's quantizers instead of the lane-parallel fast paths (same bytes, slower).
    var reference = false
    var name: String { reference ? "quantize-reference" : "quantize" }
    var summary: String {
        reference
            ? "Install the scalar reference quantizers (ggml's C ported line by line; the fast kernels are tested byte-equal to them)."
            : """
            Install the row quantizers write applies to every unit (types from the recipe and its rules, llama-quantize's width \
            fallbacks).
            """
    }
    let needs: [StageNeed] = [.plan]
    let provides: [StageNeed] = [.quantizer]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        var bytes: [QuantType: Int] = [:], counts: [QuantType: Int] = [:]
        for info in plan.layout.tensors { bytes[info.type, default: 0] += info.byteCount; counts[info.type, default: 0] += 1 }
        return [
            "quantizer": .string(KernelQuantizer(reference: reference).name), "base_recipe": .string(plan.recipe.rawValue),
            "rules": .integer(Int64(context.recipe.rules.count)),
            "types": .object(
                JSONObject(
                    QuantType.allCases.compactMap { t in
                        counts[t].map { (t.rawValue, ["tensors": .integer(Int64($0)), "bytes": .integer(Int64(bytes[t] ?? 0))]) }
                    })),
        ]
    }
    func run(_ context: PipelineContext) throws -> JSONValue {
        context.transforms.quantizer = KernelQuantizer(reference: reference)
        return try plan(context)
    }
}

struct WriteStage: Stage {
    let name = "write",
        summary =
            """
            Run every unit through the installed decoder and quantizer into the chosen layout: positioned writes into staged files, \
            journal, manifest, fsync + rename.
            """
    let needs: [StageNeed] = [.plan, .output, .decoder, .quantizer]
    let provides: [StageNeed] = [.writtenFile]
    func plan(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        return [
            "format": "gguf", "layout": .string(context.layout.rawValue), "output": .string(context.output ?? ""),
            "bytes": .integer(Int64(plan.layout.fileSize)), "tensors": .integer(Int64(plan.tensors.count)),
        ]
    }
    func run(_ context: PipelineContext) throws -> JSONValue {
        let plan = try context.requirePlan(name)
        guard let output = context.output else { throw PipelineError.missing(stage: name, need: .output) }
        let started = Date()
        switch context.layout {
        case .stacked:
            let summary = try GGUFConversion.run(
                plan, output: output, threads: context.threads, transforms: context.transforms, cancelled: context.cancelled)
            context.written = summary
            return [
                "output": .string(output), "bytes": .integer(Int64(summary.outputBytes)), "seconds": .double(summary.seconds),
                "bits_per_weight": .double(summary.bitsPerWeight),
            ]
        case .split:
            let files = try OffloadLayouts.runSplit(
                plan, output: output, threads: context.threads, transforms: context.transforms, cancelled: context.cancelled)
            return [
                "files": .array(files.map { ["path": .string($0.path), "bytes": .integer(Int64($0.bytes))] }),
                "seconds": .double(Date().timeIntervalSince(started)),
            ]
        case .expertMajor:
            let written = try OffloadLayouts.runExpertMajor(
                plan, output: output, threads: context.threads, alignment: 4096,
                hits: plan.importance.map(plan.spec.tensorLayout.routingCounts) ?? [:], transforms: context.transforms)
            return [
                "output": .string(output), "pack": .string(ConversionPlan.packPath(output: output)),
                "bytes": .integer(Int64(written.dense + written.pack)),
                "seconds": .double(Date().timeIntervalSince(started)),
            ]
        }
    }
}

struct VerifyStage: Stage {
    let name = "verify", summary = "Re-read the written file and check its header and every tensor against the manifest's XXH3."
    let needs: [StageNeed] = [.output, .writtenFile]
    func plan(_ context: PipelineContext) throws -> JSONValue { ["would_check": .string(OutputManifest.path(for: context.output ?? ""))] }
    func run(_ context: PipelineContext) throws -> JSONValue {
        guard let output = context.output else { throw PipelineError.missing(stage: name, need: .output) }
        let files = context.layout == .split ? ConversionPlan.splitPaths(output: output) : [output]
        var checked = 0
        for file in files {
            let manifest = try OutputManifest(reading: file)
            let bad = try manifest.verify()
            guard bad.isEmpty else { throw ConversionError.verification(file: file, tensors: bad) }
            checked += manifest.tensors.count
        }
        return ["tensors_checked": .integer(Int64(checked))]
    }
}

struct ReportStage: Stage {
    let name = "report", summary = "Summarize every stage's result (what ran, what it decided, what it wrote)."
    let needs: [StageNeed] = [.plan]
    func plan(_ context: PipelineContext) throws -> JSONValue { ["stages": .array(context.report.map { .string($0.stage) })] }
    func run(_ context: PipelineContext) throws -> JSONValue {
        var summary: [(String, JSONValue)] = [("stages", .array(context.report.map { .string($0.stage) }))]
        if let written = context.written {
            summary += [("bytes_written", .integer(Int64(written.outputBytes))), ("bits_per_weight", .double(written.bitsPerWeight))]
        }
        summary.append(("decoder", .string(context.transforms.decoder.name)))
        summary.append(("quantizer", .string(context.transforms.quantizer.name)))
        return .object(JSONObject(summary))
    }
}
