// `moeq fit`: the solve over exact bytes (per-tensor options, tiers with --target, the base recipe).
import ArgumentParser
import ConversionPipeline
import Foundation
import HardwarePlanner
import ModelCatalog
import OutputPlanning
import QuantKernels
import ReferenceEngine
import TensorFormats

extension FitCommand {
    // MARK: - Solve

    struct Solution {
        let types: [String: QuantType]
        let base: RecipeName
        let seconds: Double
    }

    /// Exact bytes of `type` for a tensor (padded to the file's alignment), or nil when its rows are not whole blocks.
    static func bytes(_ tensor: GGUFTensorPlan, _ type: QuantType, alignment: Int) -> Int? {
        guard let row = type.rowBytes(width: tensor.rowWidth) else { return nil }
        let rows = tensor.dimensions.reduce(1, *) / max(tensor.rowWidth, 1)
        return (row * rows + alignment - 1) / alignment * alignment
    }

    func solve(plan: ConversionPlan, measured: Measured, candidates: [QuantType], limit: Int, tiers: FitBudget?) throws -> Solution {
        let started = Date()
        let alignment = 32
        let byName = Dictionary(measured.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let quantizable = plan.tensors.filter(\.quantizable)
        // What the budget must also hold: header, and every tensor fit does not choose (norms, routers) as planned.
        let chosenNow = zip(plan.tensors, plan.types).reduce(0) { sum, pair in
            sum + (pair.0.quantizable ? Self.bytes(pair.0, pair.1, alignment: alignment) ?? 0 : 0)
        }
        var fixed = plan.layout.fileSize - chosenNow
        // Items: gate and up of one FFN share a type where --tie-gate-up asks (by default every FFN but the routed
        // experts: llama.cpp's CUDA backend fuses gate and up of matching types, its CPU backend, which runs the routed
        // experts of the offload layout, never does); every other tensor alone.
        var items: [BudgetItem] = []
        var taken = Set<String>()
        // Tensors no candidate type fits (rows narrower than every block, e.g. a 16-wide KDA projection of a small model)
        // keep the type their recipe gives them, as llama-quantize's fallback does: pinned, and counted as fixed bytes.
        var pinned: [String: QuantType] = [:]
        let plannedType = Dictionary(zip(plan.tensors.map(\.name), plan.types), uniquingKeysWith: { a, _ in a })
        for tensor in quantizable where !taken.contains(tensor.name) {
            var members = [tensor]
            let tied =
                switch tieGateUp {
                case .all: true
                case .none: false
                case .dense: tensor.role.category != .routedExperts
                }
            if tied, tensor.role.projection == .gate, let up = tensor.role.withProjection(.up),
                let other = quantizable.first(where: { $0.role == up })
            {
                members.append(other)
            }
            members.forEach { taken.insert($0.name) }
            var options: [BudgetOption] = []
            for type in candidates {
                var bytes = 0, cost = 0.0, ok = true
                for m in members {
                    guard let b = Self.bytes(m, type, alignment: alignment) else { ok = false; break }
                    guard let s = byName[m.name] else {
                        // Never met by the calibration pass (e.g. an expert tensor no token reached): priced by bytes only.
                        bytes += b
                        continue
                    }
                    guard let c = measured.calibration.cost(s, type) else { ok = false; break }
                    bytes += b
                    cost += c
                }
                if ok { options.append(BudgetOption(type: type, bytes: bytes, cost: cost)) }
            }
            guard !options.isEmpty else {
                for m in members {
                    let type = plannedType[m.name] ?? .f32
                    pinned[m.name] = type
                    fixed += Self.bytes(m, type, alignment: alignment) ?? 0
                }
                continue
            }
            items.append(BudgetItem(tensors: members.map(\.name), options: options))
        }
        let unmeasured = quantizable.filter { byName[$0.name] == nil }.count
        if reuseSensitivity, unmeasured > 0 {
            printError(
                "warning: \(unmeasured) of \(quantizable.count) tensors have no sensitivity in \(measured.path): priced by bytes alone")
        }
        let available = limit - fixed
        guard available > 0 else {
            throw ValidationError("the budget, \(limit) bytes, does not hold even the header and unquantized tensors (\(fixed) bytes)")
        }
        func solved(_ items: [BudgetItem], _ bytes: Int, _ what: String) throws -> [Int] {
            do { return try BudgetSolver.solve(items, budget: bytes) } catch let error as BudgetSolverError {
                if case .doesNotFit(_, let smallest) = error {
                    throw ValidationError(
                        "\(what), \(bytes + fixed) bytes, is below the smallest file the candidate types make (\(smallest + fixed) bytes)")
                }
                throw error
            }
        }
        var chosen = try solved(items, available, "the budget")
        // With tiers: the fast tier must hold every tensor but the routed experts (and the unquantized ones). When the
        // joint solution puts more there, those tensors are solved within the fast tier alone and the experts within
        // the rest.
        if let tiers, !tiers.unified {
            let routed = Set(quantizable.filter { $0.role.category == .routedExperts }.map(\.name))
            let isFast = items.map { !$0.tensors.contains(where: routed.contains) }
            let fastBytes = zip(items, chosen).enumerated().reduce(0) {
                $0 + (isFast[$1.offset] ? $1.element.0.options[$1.element.1].bytes : 0)
            }
            if fastBytes + fixed > tiers.fastBytes {
                let fastItems = items.indices.filter { isFast[$0] }, slowItems = items.indices.filter { !isFast[$0] }
                let fastChosen = try solved(fastItems.map { items[$0] }, tiers.fastBytes - fixed, "the fast tier")
                let fastUsed = zip(fastItems, fastChosen).reduce(0) { $0 + items[$1.0].options[$1.1].bytes }
                let slowChosen = try solved(slowItems.map { items[$0] }, available - fastUsed, "system RAM")
                for (i, c) in zip(fastItems, fastChosen) { chosen[i] = c }
                for (i, c) in zip(slowItems, slowChosen) { chosen[i] = c }
            }
        }
        var types = pinned
        for (item, index) in zip(items, chosen) { for name in item.tensors { types[name] = item.options[index].type } }
        // general.file_type: the named recipe nearest in bits per weight (llama-quantize's positional type for the type file).
        let weightsCount = quantizable.filter { pinned[$0.name] == nil }.reduce(0) { $0 + $1.dimensions.reduce(1, *) }
        let bits = Double(zip(items, chosen).reduce(0) { $0 + $1.0.options[$1.1].bytes } * 8) / Double(max(weightsCount, 1))
        let named: [(RecipeName, Double)] = [
            (.q8_0, 8.5), (.q6_K, 6.56), (.q5_K_M, 5.7), (.q4_K_M, 4.9), (.q3_K_M, 3.9), (.q2_K, 3.0), (.iq2_xs, 2.4), (.iq2_xxs, 2.1),
            (.iq1_m, 1.8),
        ]
        let base = named.filter { importance(needed: $0.0) }.min { abs($0.1 - bits) < abs($1.1 - bits) }?.0 ?? .q8_0
        return Solution(types: types, base: base, seconds: Date().timeIntervalSince(started))
    }

    /// Named recipes whose own rules need an importance matrix are usable as the base only with one.
    func importance(needed recipe: RecipeName) -> Bool { imatrix != nil || ![.iq2_xs, .iq2_xxs, .iq1_m].contains(recipe) }
}
