// The `moeq` command: one subcommand per file; library targets hold the logic.
import ArgumentParser
import Foundation

@main
struct Moeq: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moeq",
        abstract: "Turn huge Mixture-of-Experts checkpoints into files you can run on hardware you own.",
        version: "0.1.0",
        subcommands: [
            InspectCommand.self, ConvertCommand.self, MergeCommand.self, PipelineCommand.self, PlanCommand.self, SynthCommand.self,
            DumpCommand.self, PackCommand.self, UnpackCommand.self, VerifyCommand.self, EvalCommand.self, ValidateCommand.self,
            ImatrixCommand.self, FitCommand.self, BenchCommand.self,
        ])

    /// As ArgumentParser's, then standard output flushed and checked: a report that could not be written (a full disk,
    /// a closed pipe) is an error, not a silent empty file.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            flushStandardOutput()
            exit(withError: error)
        }
        flushStandardOutput()
    }

    static func flushStandardOutput() {
        // fflush(NULL): every stream with pending output (Swift's print buffers in C's stdout).
        guard fflush(nil) == 0 else {
            printError("error: standard output: \(String(cString: strerror(errno)))")
            Foundation.exit(1)
        }
    }
}
