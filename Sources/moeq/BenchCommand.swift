// `moeq bench quant`: quantization throughput against ggml's reference measured in the same run.
import ArgumentParser
import ConversionPipeline
import Foundation
import QuantKernels
import ReferenceEngine

extension QuantType: ExpressibleByArgument {
    /// GGUF type names as written (Q4_K) or as llama.cpp's flags spell them (q4_k, q8_0).
    public init?(argument: String) {
        guard
            let type = QuantType(rawValue: argument)
                ?? QuantType.allCases.first(where: { $0.rawValue.lowercased() == argument.lowercased() })
        else { return nil }
        self = type
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Benchmarks (quant: GB/s of f32 input per type against ggml; product: the engine's f32 product against OpenBLAS sgemm; "
            + "both measured in the same run).",
        subcommands: [QuantBench.self, ProductBench.self])

    struct ProductBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "product", abstract: "The engine's row-exact f32 product against OpenBLAS sgemm, GFLOP/s.")

        @Option(
            parsing: .upToNextOption,
            help: "Shapes M×K×N (rows, inner, columns), e.g. 21248x256x256 (default: the bundled model's and Qwen3-235B's).")
        var shapes: [String] = ["21248x256x256", "256x256x3072", "2048x4096x1536", "128x4096x1536", "512x7168x2048"]
        @Option(parsing: .upToNextOption, help: "Thread counts.") var threads = [1, ProcessInfo.processInfo.activeProcessorCount]
        @Option(parsing: .unconditional, help: "Runs per measurement (the fastest counts).") var repeats = 5

        func parsedShapes() throws -> [(Int, Int, Int)] {
            try shapes.map { text in
                let parts = text.split(separator: "x").compactMap { Int($0) }
                guard parts.count == 3, parts.allSatisfy({ (1...1 << 20).contains($0) }),
                    parts[0] * parts[1] + parts[1] * parts[2] <= 1 << 28
                else { throw ValidationError("--shapes takes MxKxN with each in 1…1048576 and at most 2^28 input values, not \"\(text)\"") }
                return (parts[0], parts[1], parts[2])
            }
        }

        func validate() throws {
            _ = try parsedShapes()
            guard !threads.isEmpty, threads.allSatisfy({ (1...256).contains($0) }) else {
                throw ValidationError("--threads must be in 1…256")
            }
            guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must be in 1…1000") }
        }

        func run() throws {
            try reportingErrors {
                var table = TextTable([
                    .init("shape (M×K×N)"), .init("threads", .right), .init("ours GFLOP/s", .right), .init("OpenBLAS GFLOP/s", .right),
                    .init("ours/OpenBLAS", .right), .init("max |diff| / max |C|", .right),
                ])
                for row in ProductBenchmark.run(shapes: try parsedShapes(), threads: threads, repeats: repeats) {
                    table.add(
                        "\(row.rows)×\(row.inner)×\(row.columns)", "\(row.threads)", String(format: "%.1f", row.oursGFLOPS),
                        String(format: "%.1f", row.openBLASGFLOPS), String(format: "%.2f×", row.oursGFLOPS / row.openBLASGFLOPS),
                        String(format: "%.1e", row.relativeDifference))
                }
                table.print()
            }
        }
    }

    struct QuantBench: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "quant", abstract: "Quantization throughput per type.")

        @Option(parsing: .unconditional, help: "Rows of the test matrix.") var rows = 1024
        @Option(parsing: .unconditional, help: "Row width (a multiple of 256).") var width = 4096
        @Option(parsing: .unconditional, help: "Threads for the multi-threaded column (default: all cores).") var threads = ProcessInfo
            .processInfo.activeProcessorCount
        @Option(parsing: .upToNextOption, help: "Types to measure.") var types: [QuantType] = [
            .q8_0, .q4_0, .q4_K, .q5_K, .q6_K, .q3_K, .q2_K, .mxfp4,
        ]
        @Flag(help: "Pass an importance vector (imatrix paths).") var importance = false
        @Option(help: "Path of ggml's libggml-base.so (llama.cpp peer, see ../shared/peers) to measure beside us.") var ggml: String?
        @Option(parsing: .unconditional, help: "Runs per measurement (the fastest counts).") var repeats = 3

        func validate() throws {
            guard (1...1_048_576).contains(rows) else { throw ValidationError("--rows must be in 1…1048576") }
            guard (256...1_048_576).contains(width), width % 256 == 0 else {
                throw ValidationError("--width must be a multiple of 256 in 256…1048576")
            }
            guard rows * width <= 1 << 28 else { throw ValidationError("--rows × --width must be at most 2^28 values (1 GiB of f32)") }
            guard (1...4096).contains(threads) else { throw ValidationError("--threads must be in 1…4096") }
            guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must be in 1…1000") }
        }

        func run() throws {
            try reportingErrors {
                let peer = try ggml.map { path throws -> GGMLPeer in try GGMLPeer(path: path) }
                print(
                    """
                    \(rows)×\(width) f32 (\(String(format: "%.1f", Double(rows * width * 4) / 1e6)) MB), \(threads) \
                    threads\(importance ? ", with imatrix" : "")\(peer.map { ", ggml: \($0.path)" } ?? "")
                    """
                )
                var table = TextTable([
                    .init("type"), .init("1 thread", .right), .init("\(threads) threads", .right), .init("scaling", .right),
                    .init("ggml ref", .right), .init("ours/ggml", .right), .init("same bytes"),
                ])
                for row in QuantBenchmark.run(
                    types: types, rows: rows, width: width, threads: threads, importance: importance, peer: peer, repeats: repeats)
                {
                    table.add(
                        row.type.rawValue, String(format: "%.3f GB/s", row.oneThreadGBps), String(format: "%.3f GB/s", row.allThreadsGBps),
                        String(format: "%.2f×", row.allThreadsGBps / row.oneThreadGBps),
                        row.ggmlGBps.map { String(format: "%.3f", $0) } ?? "-",
                        row.ggmlGBps.map { String(format: "%.2f×", row.oneThreadGBps / $0) } ?? "-",
                        row.sameBytesAsGGML.map { $0 ? "yes" : "NO" } ?? "-")
                }
                table.print()
            }
        }
    }
}
