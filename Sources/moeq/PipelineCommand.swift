// `moeq pipeline RECIPE.json`: run the stages a recipe file declares (formats/recipe.md). The tool registers the
// `validate` stage here, the plugin way: it needs the reference engine, which the conversion library does not link.
import ArgumentParser
import ConversionPipeline
import OutputPlanning
import Foundation
import ReferenceEngine
import TensorFormats

struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract:
            "Run a pipeline declared in a recipe file: source → decode → repack-experts → quantize → write → verify [→ validate] → report.",
        discussion: "Stages: " + StageRegistry.names.joined(separator: ", ")
            + ", validate. --dry-run plans every stage (exact output size, types, bytes per type) without writing.")

    @Argument(help: "Recipe file (JSON, formats/recipe.md).") var recipe: String
    @Flag(help: "Plan every stage; write nothing.") var dryRun = false
    @Option(parsing: .unconditional, help: "Threads for quantization (default: the recipe's, else all cores).") var threads: Int?
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "List the registered stages with what they need, and exit.") var listStages = false
    @OptionGroup var outputs: OutputOptions

    func validate() throws {
        if let threads, !(1...4096).contains(threads) { throw ValidationError("--threads must be in 1…4096, not \(threads)") }
    }

    func run() throws {
        try reportingErrors {
            StageRegistry.register(ValidateStage())
            if listStages {
                var table = TextTable(titles: "stage", "needs", "what it does")
                for stage in StageRegistry.all {
                    table.add(
                        stage.name, stage.needs.isEmpty ? "nothing" : stage.needs.map(\.rawValue).joined(separator: ", "), stage.summary)
                }
                table.print()
                return
            }
            let file = try RecipeFile(path: recipe)
            let context = PipelineContext(recipe: file, threads: threads ?? file.threads ?? ProcessInfo.processInfo.activeProcessorCount)
            if let text = file.validate?.text, !PositionalFile.exists(text) {
                throw TokenInputError.invalid(file: text, reason: "the recipe's validate.text cannot be read: No such file or directory")
            }
            if !dryRun, let output = file.output {
                let layout = OutputLayout(rawValue: file.layout ?? "stacked") ?? .stacked
                let paths =
                    layout == .split
                    ? ConversionPlan.splitPaths(output: output)
                    : layout == .expertMajor ? [output, ConversionPlan.packPath(output: output)] : [output]
                try checkOutputs(
                    paths.map {
                        .file(
                            $0, companions: [StagedFile.temporaryPath(for: $0), OutputManifest.path(for: $0), $0 + ".journal"],
                            writtenByMoeq: isMoeqModel)
                    },
                    inputs: [recipe, file.source, file.imatrix, file.validate?.text], force: outputs.force)
            }
            Interruption.install()
            context.cancelled = { Interruption.requested }
            let stages = try StageRegistry.pipeline(for: file)
            try StageRegistry.execute(stages, context: context, dryRun: dryRun) { stage, result in
                if !json { print("\(stage.name): \(result.serialized())") }
            }
            if json {
                print(JSONValue.object(JSONObject(context.report.map { ($0.stage, $0.result) })).prettyPrinted(), terminator: "")
            }
        }
    }
}

/// `validate` as a stage: the written GGUF against the source checkpoint on the recipe's text (llama-perplexity's
/// method, exact arithmetic).
struct ValidateStage: Stage {
    let name = "validate",
        summary = "Perplexity, ΔPPL, KLD and top-1 agreement of the written file against the source, with the reference engine."
    let needs: [StageNeed] = [.checkpoint, .output, .calibrationText, .writtenFile]

    func plan(_ context: PipelineContext) throws -> JSONValue {
        guard let settings = context.recipe.validate else { throw PipelineError.missing(stage: name, need: .calibrationText) }
        return [
            "text": .string(settings.text), "ctx": .integer(Int64(settings.context)),
            "chunks": settings.chunks.map { .integer(Int64($0)) } ?? .null,
        ]
    }

    func run(_ context: PipelineContext) throws -> JSONValue {
        guard let settings = context.recipe.validate, let source = context.source, let output = context.output else {
            throw PipelineError.missing(stage: name, need: .calibrationText)
        }
        let base = try ReferenceModel.weights(path: source)
        let windows = try llamaWindows(
            tokens: nil, text: settings.text, directory: source, vocabularySize: base.spec.vocabularySize, context: settings.context,
            maxChunks: settings.chunks, what: "ctx")
        let quant = try ReferenceModel.weights(path: output, configDirectory: source)
        let report = try QuantValidation.run(quant: quant, base: .model(base), configDirectory: source, windows: windows).report
        return [
            "chunks": .integer(Int64(report.chunks)), "ppl_base": .double(report.basePerplexity),
            "ppl_quant": .double(report.quantPerplexity),
            "kld_mean": .double(report.meanKLD), "top1_agreement": .double(report.top1Agreement),
        ]
    }
}
