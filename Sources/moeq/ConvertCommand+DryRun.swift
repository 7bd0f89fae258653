// `moeq convert --dry-run`: the layout (and each shard's part) printed as text or JSON before anything is written.
import ArgumentParser
import ConversionPipeline
import Foundation
import OutputPlanning
import QuantKernels
import TensorFormats

extension ConvertCommand {
    func printDryRun(_ plan: ConversionPlan) throws {
        if layout != .stacked {
            // The other layouts' files, sized from the same plan.
            var files: [(String, Int)] = []
            if layout == .split {
                files = zip(ConversionPlan.splitPaths(output: output), try plan.splitLayouts()).map { ($0, $1.layout.fileSize) }
            } else {
                let hits = plan.importance.map(plan.tensorLayout.routingCounts) ?? [:]
                let pack = try plan.packLayout(alignment: pageSize, hits: hits, denseFile: (output as NSString).lastPathComponent)
                files = [(output, try plan.denseLayout().layout.fileSize), (ConversionPlan.packPath(output: output), pack.fileSize)]
            }
            if json {
                print(
                    JSONValue.object(
                        JSONObject([
                            ("layout", .string(layout.rawValue)),
                            ("files", .array(files.map { ["path": .string($0.0), "bytes": .integer(Int64($0.1))] })),
                        ])
                    ).prettyPrinted(), terminator: "")
            } else {
                for (path, bytes) in files { print("\(path): \(bytes) bytes (\(humanBytes(bytes))) would be written") }
            }
            return
        }
        if let (k, n) = shardNumbers {
            let part = ShardedConversion.partPlan(plan, output: output, shard: k, of: n)
            if json {
                print(
                    JSONValue.object(
                        JSONObject([
                            ("part", .string(part.path)), ("shard", .integer(Int64(k))), ("shards", .integer(Int64(n))),
                            ("bytes", .integer(Int64(part.bytes))), ("merged_bytes", .integer(Int64(plan.layout.fileSize))),
                            ("tensors", .array(part.tensors.map { .string(plan.layout.tensors[$0].name) })),
                        ])
                    ).prettyPrinted(), terminator: "")
            } else {
                for i in part.tensors { print(plan.layout.tensors[i].name) }
                print(
                    """
                    \(part.tensors.count) of \(plan.tensors.count) tensors, \(part.bytes) bytes (\(humanBytes(part.bytes))) would be \
                    written to \(part.path) (shard \(k)/\(n) of \(output), \(humanBytes(plan.layout.fileSize)) once merged)
                    """)
            }
            return
        }
        if json { print(layoutJSON(plan).prettyPrinted(), terminator: ""); return }
        var table = TextTable([.init("tensor"), .init("type"), .init("ne"), .init("offset", .right), .init("bytes", .right)])
        for (tensor, info) in zip(plan.tensors, plan.layout.tensors) {
            table.add(
                tensor.name, info.type.rawValue, "{" + tensor.dimensions.map(String.init).joined(separator: ", ") + "}",
                "\(plan.layout.dataStart + info.offset)", "\(info.byteCount)")
        }
        table.print()
        print(
            """
            \(plan.tensors.count) tensors, \(plan.layout.fileSize) bytes (\(humanBytes(plan.layout.fileSize))) would be written to \
            \(output)
            """
        )
    }

    func layoutJSON(_ plan: ConversionPlan) -> JSONValue {
        .object(
            JSONObject([
                ("output", .string(output)), ("recipe", .string(plan.recipe.rawValue)), ("bytes", .integer(Int64(plan.layout.fileSize))),
                ("data_start", .integer(Int64(plan.layout.dataStart))),
                (
                    "tensors",
                    .array(
                        zip(plan.tensors, plan.layout.tensors).map { tensor, info in
                            [
                                "name": .string(tensor.name), "type": .string(info.type.rawValue),
                                "ne": .array(tensor.dimensions.map { .integer(Int64($0)) }),
                                "offset": .integer(Int64(plan.layout.dataStart + info.offset)), "bytes": .integer(Int64(info.byteCount)),
                            ]
                        })
                ),
                ("resources", ResourceUsage.shared.object),
            ]))
    }
}
