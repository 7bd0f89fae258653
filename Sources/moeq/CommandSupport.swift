// Shared CLI plumbing: library errors become one `error:` line on stderr and exit status 1.
import ArgumentParser
import Foundation

/// Runs `body`; any thrown library error is printed as `moeq: error: …` and ends the process with status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

func printError(_ text: String) {
    var standardError = StandardError()
    print(text, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}

/// 1234567 → "1,234,567".
func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (value < 0 ? "-" : "") + out
}

/// Bytes with a binary unit: "1.50 GiB".
func humanBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
}

/// Parameters with a decimal unit: "1.03 T", "32.9 B".
func humanCount(_ count: Int) -> String {
    let value = Double(count)
    if value >= 1e12 { return String(format: "%.3f T", value / 1e12) }
    if value >= 1e9 { return String(format: "%.2f B", value / 1e9) }
    if value >= 1e6 { return String(format: "%.2f M", value / 1e6) }
    if value >= 1e3 { return String(format: "%.1f K", value / 1e3) }
    return String(count)
}
