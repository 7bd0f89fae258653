// Finds a target's bundled data (SwiftPM copies it to `<package>_<target>.resources/` beside the binary) without
// SwiftPM's generated `Bundle.module`, which stops the process when the directory is missing. Looked up in order:
// $MOEQ_RESOURCES/<bundle>.resources, beside the running executable, then the source tree the binary was built
// from; nil (and a clear error from the caller) when none has it.
import Foundation

public enum ResourceLocator {
    /// `item` (a file or directory) of the resource bundle `bundle` (e.g. "moeq_ModelCatalog").
    /// `sourceFallback` is the item's path in the source tree (callers derive it from `#filePath`).
    public static func url(bundle: String, item: String, sourceFallback: URL) -> URL? {
        var candidates: [URL] = []
        if let root = ProcessInfo.processInfo.environment["MOEQ_RESOURCES"] {
            candidates.append(URL(fileURLWithPath: root).appendingPathComponent("\(bundle).resources").appendingPathComponent(item))
        }
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments.first ?? "")
        candidates.append(
            executable.resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("\(bundle).resources")
                .appendingPathComponent(item))
        candidates.append(sourceFallback)
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) }
    }
}
