// `moeq verify OUT`: recheck a converted file against the manifest written beside it.
import ArgumentParser
import TensorFormats

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Recheck a converted file's header and every tensor against OUT.manifest.json (XXH3).")

    @Argument(help: "A file moeq wrote (its manifest sits beside it).") var path: String
    @Flag(help: "Print a JSON summary (tensors checked, resources: peak RSS, bytes read).") var json = false

    func run() throws {
        try reportingErrors {
            let manifest = try OutputManifest(reading: path)
            let bad = try manifest.verify()
            guard bad.isEmpty else {
                printError(
                    """
                    error: \(path): \(bad.count) of \(manifest.tensors.count) tensors differ from the manifest: \
                    \(bad.prefix(10).joined(separator: ", "))\(bad.count > 10 ? ", …" : "")
                    """
                )
                throw ExitCode(1)
            }
            if json {
                let summary: JSONValue = [
                    "file": .string(path), "tensors": .integer(Int64(manifest.tensors.count)), "match": true,
                    "resources": ResourceUsage.shared.object,
                ]
                print(summary.prettyPrinted(), terminator: "")
                return
            }
            print("\(path): header and \(manifest.tensors.count) tensors match the manifest")
        }
    }
}
