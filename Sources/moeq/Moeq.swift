// The `moeq` command: one subcommand per file; library targets hold the logic.
import ArgumentParser

@main
struct Moeq: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moeq",
        abstract: "Turn huge Mixture-of-Experts checkpoints into files you can run on hardware you own.",
        version: "0.1.0",
        subcommands: [
            InspectCommand.self, ConvertCommand.self, MergeCommand.self, PipelineCommand.self, PlanCommand.self, SynthCommand.self,
            DumpCommand.self, PackCommand.self, UnpackCommand.self, VerifyCommand.self, EvalCommand.self, ValidateCommand.self,
            ImatrixCommand.self, BenchCommand.self,
        ])
}
