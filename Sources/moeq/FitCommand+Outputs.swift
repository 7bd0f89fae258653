// `moeq fit`: what it writes and prints (recipe file, llama-quantize type file, report, tier summary).
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
    // MARK: - Outputs

    func recipeDocument(_ solution: Solution, limit: Int) -> JSONValue {
        let rules: [JSONValue] = solution.types.sorted { $0.key < $1.key }.map { name, type in
            .object(JSONObject([("tensor", .string(name)), ("type", .string(type.rawValue))]))
        }
        var pairs: [(String, JSONValue)] = [
            ("format", .string("moeq recipe 1")), ("base", .string(solution.base.rawValue)),
            (
                "description",
                .string(
                    "moeq fit: \(solution.types.count) tensors within \(limit) bytes\(target.map { " (\($0))" } ?? ""), solved from measured "
                        + "sensitivities")
            ),
            ("source", .string(model)), ("output", .string(output)),
        ]
        if let imatrix { pairs.append(("imatrix", .string(imatrix))) }
        pairs.append(("rules", .array(rules)))
        return .object(JSONObject(pairs))
    }

    /// llama-quantize --tensor-type-file: one anchored, escaped pattern per quantized tensor (regex_search on the name).
    func tensorTypeLines(_ plan: ConversionPlan) -> String {
        zip(plan.tensors, plan.types).filter { $0.0.quantizable }.map { tensor, type in
            "^" + tensor.name.replacingOccurrences(of: ".", with: "\\.") + "$=" + type.rawValue.lowercased()
        }.joined(separator: "\n") + "\n"
    }

    struct GroupRow {
        let group: String
        let types: [QuantType: Int]
        let bytes: Int
    }

    func groupTable(_ plan: ConversionPlan) -> (rows: [GroupRow], json: JSONValue) {
        var rows: [String: (types: [QuantType: Int], bytes: Int)] = [:]
        for (tensor, info) in zip(plan.tensors, plan.layout.tensors) where tensor.quantizable {
            let g = FitCalibration.kind(tensor.name)
            rows[g, default: ([:], 0)].types[info.type, default: 0] += 1
            rows[g, default: ([:], 0)].bytes += info.byteCount
        }
        let list = rows.sorted { $0.key < $1.key }.map { GroupRow(group: $0.key, types: $0.value.types, bytes: $0.value.bytes) }
        let json: JSONValue = .array(
            list.map { row in
                .object(
                    JSONObject([
                        ("group", .string(row.group)), ("bytes", .integer(Int64(row.bytes))),
                        (
                            "types",
                            .object(
                                JSONObject(
                                    row.types.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                                        ($0.key.rawValue, .integer(Int64($0.value)))
                                    }))
                        ),
                    ]))
            })
        return (list, json)
    }

    func report(
        plan: ConversionPlan, groups: (rows: [GroupRow], json: JSONValue), predicted: Double, measured: Measured, solution: Solution,
        validation: QuantValidationReport?, limit: Int, placement: Plan?
    ) {
        guard !json else { return }
        var table = TextTable([.init("group"), .init("types (tensors)"), .init("bytes", .right)])
        for row in groups.rows {
            let types = row.types.sorted { $0.key.bitsPerWeight > $1.key.bitsPerWeight }.map { "\($0.key.rawValue)×\($0.value)" }
            table.add(row.group, types.joined(separator: " "), humanBytes(row.bytes))
        }
        table.print()
        print(
            "file: \(grouped(plan.layout.fileSize)) bytes of a \(grouped(limit))-byte budget (general.file_type "
                + "\(solution.base.rawValue)); solved in \(String(format: "%.3f", solution.seconds)) s")
        print(String(format: "predicted KLD %.6f (calibrated on %d probes)", predicted, measured.calibration.probes.count))
        if let placement {
            print(
                "on \(placement.target): \(placement.verdict), fast tier \(humanBytes(Int(placement.fastBytes))), RAM "
                    + "\(humanBytes(Int(placement.ramBytes))), disk \(humanBytes(Int(placement.diskBytes))); "
                    + String(format: "%.1f tok/s decode (planner)", placement.tokensPerSecond))
            print("run: \(placement.command)")
        }
        if let validation {
            print(
                String(
                    format: "measured on the calibration windows: KLD %.6f, PPL ratio %.4f, top-1 agreement %.2f %%", validation.meanKLD,
                    validation.ratio, 100 * validation.top1Agreement))
            print("wrote \(output), \(recipePath), \(typesPath)")
        }
    }

    // MARK: - Tiers (--target)

    func tierLine(_ tiers: FitBudget) -> String {
        "budget on \(tiers.target): fast tier \(humanBytes(tiers.fastBytes)), RAM \(humanBytes(tiers.ramBytes)) (KV cache "
            + "\(humanBytes(tiers.kvBytes)) at \(grouped(tiers.context)) tokens, \(tiers.cacheType.rawValue), taken off first)"
    }

    func tierJSON(_ tiers: FitBudget, plan: ConversionPlan, placement: Plan) -> [(String, JSONValue)] {
        [
            ("target", .string(tiers.target)), ("context", .integer(Int64(tiers.context))), ("kv_bytes", .integer(Int64(tiers.kvBytes))),
            ("fast_tier_budget_bytes", .integer(Int64(tiers.fastBytes))), ("ram_budget_bytes", .integer(Int64(tiers.ramBytes))),
            ("fast_tier_bytes", .integer(Int64(placement.fastBytes))), ("ram_bytes", .integer(Int64(placement.ramBytes))),
            ("disk_bytes", .integer(Int64(placement.diskBytes))), ("verdict", .string("\(placement.verdict)")),
            ("decode_tokens_per_second", .double(placement.tokensPerSecond)), ("command", .string(placement.command)),
        ]
    }
}
