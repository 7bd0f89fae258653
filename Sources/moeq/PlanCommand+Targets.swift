// `moeq plan … --target T`: the recipes × targets matrix, what to pick on each target (the largest recipe that fits in
// fast memory alone, and in fast memory + RAM), its llama.cpp command, and the budget `moeq fit --target` would fill.
import ArgumentParser
import Foundation
import HardwarePlanner
import ModelCatalog
import OutputPlanning
import TensorFormats

/// A model as planned: its spec, the recipes' footprints and what they are made from.
struct PlannedModel {
    let spec: ModelSpec
    var footprints: [Footprint]
    let source: SourceSize?

    /// A recipe's file size over the source's ("" without a source).
    func ratio(_ footprint: Footprint) -> String {
        source.map { String(format: "%.2f×", Double(footprint.fileBytes) / Double(max($0.bytes, 1))) } ?? ""
    }
}

/// The bytes of the checkpoint a plan starts from.
struct SourceSize {
    let bytes: Int
    let note: String

    /// The released checkpoint as its config.json describes it (bundled specs carry the release's quantization_config).
    static func fromConfig(_ spec: ModelSpec, floatBytes: Int = 2) -> SourceSize {
        let encoding =
            spec.quantization == .none
            ? (floatBytes == 4 ? "F32" : "BF16") + " weights" : spec.quantization.summary + ", the rest BF16"
        return SourceSize(
            bytes: ReleasedCheckpoint.bytes(spec: spec, floatBytes: floatBytes),
            note: "tensor data of the released checkpoint from its config.json: \(encoding)")
    }

    var line: String { "source: \(humanBytes(bytes)) (\(grouped(bytes)) bytes), \(note)" }
    var json: JSONValue { ["bytes": .integer(Int64(bytes)), "what": .string(note)] }
}

extension PlanCommand {
    func printMatrix(_ planned: PlannedModel, catalog: HardwareCatalog) throws {
        let (spec, footprints) = (planned.spec, planned.footprints)
        let resolved = try targets.map { try catalog.target($0) }
        var profile: RoutingProfile?
        if let routing {
            profile = try RoutingProfile(imatrix: try ImportanceMatrix(path: routing), path: routing, spec: spec)
        }
        let plans = footprints.map { f in
            resolved.map {
                Planner.plan(
                    f, spec: spec, target: $0, context: context, engine: engine == .ktransformers ? .ktransformers : .llamaCpp,
                    cacheType: cacheType, routing: profile)
            }
        }
        let title = "\(model): decode tokens/s by file size and target (\(grouped(context))-token context, \(engine.rawValue))"
        // What `moeq fit --target` would fill on each target (same context and cache type).
        let budgets = resolved.map { FitBudget.of(spec: spec, target: $0, context: context, cacheType: cacheType) }
        let picks = Recommendation.picks(plans, sizes: footprints.map(\.fileBytes))
        let (table, lines) = matrixText(planned, plans: plans, picks: picks, targets: resolved, budgets: budgets)
        let chart = PlanChart.svg(plans, sizes: footprints.map(\.fileBytes), title: title)
        if let svg { try AtomicFile.write(chart, to: svg) }
        if let html {
            let page = PlanChart.html(
                plans, svg: chart, title: title, header: table.columns.map(\.title), rows: table.rows, lines: lines)
            try AtomicFile.write(page, to: html)
        }
        if json {
            printMatrixJSON(planned, plans: plans, picks: picks, budgets: budgets)
            return
        }
        table.print()
        for line in lines { print(line) }
    }

    /// The terminal's table and the lines under it (the HTML page carries both).
    func matrixText(
        _ planned: PlannedModel, plans: [[Plan]], picks: [Recommendation], targets resolved: [Target], budgets: [FitBudget]
    )
        -> (TextTable, [String])
    {
        func gb(_ bytes: Double) -> String { String(format: "%.0f", bytes / 1e9) }
        var table = TextTable(
            [.init("recipe"), .init("file", .right), .init("vs source", .right)] + resolved.map { TextTable.Column($0.name) })
        for (f, row) in zip(planned.footprints, plans) {
            let cells = row.map { p -> String in
                let fit = p.verdict == .fits ? "fits" : (p.verdict == .fitsWithDiskStreaming ? "disk" : "NO")
                return
                    """
                    \(fit) \(gb(p.fastBytes))/\(gb(p.ramBytes))/\(gb(p.diskBytes)) \(String(format: "%.1f", p.tokensPerSecond)) t/s \
                    pp \(String(format: "%.0f", p.prefillTokensPerSecond))
                    """
            }
            table.add([f.label, humanBytes(f.fileBytes), planned.ratio(f)] + cells)
        }
        var lines: [String] = []
        if let source = planned.source { lines.append(source.line) }
        lines.append(
            """
            cells: verdict, GB on GPU-or-unified / RAM / disk, decode tokens/s (batch 1, \(grouped(context))-token context, \
            \(engine.rawValue)), prompt processing tokens/s (pp, 512-token micro-batches); efficiencies in formats/hardware/README.md
            """
        )
        for (pick, target) in zip(picks, resolved) {
            func name(_ plan: Plan?) -> String {
                plan.map { "\($0.recipe) (\(String(format: "%.1f", $0.tokensPerSecond)) tok/s)" } ?? "none of these recipes"
            }
            let fastTier = target.unified != nil ? "unified memory" : (target.gpus.isEmpty ? nil : "GPU memory")
            var line = "\(pick.target): "
            if let fastTier { line += "largest in \(fastTier) alone: \(name(pick.inFastMemory)); " }
            line += "largest without disk streaming: \(name(pick.withRAM))"
            lines.append(line)
            lines.append("  \(pick.shown.recipe): \(pick.shown.command)")
            if pick.shown.devices.count > 1 {
                lines.append("  devices: " + pick.shown.devices.map { "\($0.name) \(humanBytes(Int($0.bytes)))" }.joined(separator: ", "))
            }
            for note in pick.shown.advice { lines.append("  note: \(note)") }
        }
        for b in budgets {
            lines.append(
                """
                moeq fit --target \(b.target): budget \(humanBytes(b.totalBytes)) = fast tier \(humanBytes(b.fastBytes)) (after \
                \(humanBytes(b.kvBytes)) of KV cache) + RAM \(humanBytes(b.ramBytes))
                """
            )
        }
        return (table, lines)
    }

    func printMatrixJSON(_ planned: PlannedModel, plans: [[Plan]], picks: [Recommendation], budgets: [FitBudget]) {
        let fit: [JSONValue] = budgets.map { b in
            [
                "target": .string(b.target), "kv_bytes": .integer(Int64(b.kvBytes)), "fast_tier_bytes": .integer(Int64(b.fastBytes)),
                "ram_bytes": .integer(Int64(b.ramBytes)), "total_bytes": .integer(Int64(b.totalBytes)),
            ]
        }
        let rows: [JSONValue] = zip(planned.footprints, plans).flatMap { f, row in
            row.map { p in
                [
                    "recipe": .string(p.recipe), "target": .string(p.target), "file_bytes": .integer(Int64(f.fileBytes)),
                    "verdict": .string(p.verdict.rawValue), "fast_tier_bytes": .integer(Int64(p.fastBytes)),
                    "ram_bytes": .integer(Int64(p.ramBytes)), "disk_bytes": .integer(Int64(p.diskBytes)),
                    "margin_bytes": .integer(Int64(p.margin)), "decode_tokens_per_second": .double(p.tokensPerSecond),
                    "prefill_tokens_per_second": .double(p.prefillTokensPerSecond), "cpu_moe_layers": .integer(Int64(p.cpuMoeLayers)),
                    "devices": .array(p.devices.map { ["device": .string($0.name), "bytes": .integer(Int64($0.bytes))] }),
                    "llama_cpp": .string(p.command), "advice": .array(p.advice.map { .string($0) }),
                ] as JSONValue
            }
        }
        let recommendations: [JSONValue] = picks.map { pick in
            [
                "target": .string(pick.target), "largest_in_fast_memory": pick.inFastMemory.map { .string($0.recipe) } ?? .null,
                "largest_without_disk": pick.withRAM.map { .string($0.recipe) } ?? .null, "llama_cpp": .string(pick.shown.command),
            ]
        }
        var document = JSONObject()
        document["model"] = .string(model)
        document["context"] = .integer(Int64(context))
        document["engine"] = .string(engine.rawValue)
        document["source"] = planned.source.map(\.json) ?? .null
        document["plans"] = .array(rows)
        document["recommendations"] = .array(recommendations)
        document["fit_budgets"] = .array(fit)
        print(withResources(.object(document)).prettyPrinted(), terminator: "")
    }
}
