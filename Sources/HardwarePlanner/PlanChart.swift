// `moeq plan --svg F / --html F`: the recipes × targets matrix as a chart — one cell per pair, coloured by verdict
// (fits / disk streaming / does not fit), shaded by decode speed, labelled with tokens/s and GB on GPU / RAM / disk.
import Foundation

public enum PlanChart {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }

    public static func svg(_ plans: [[Plan]], title: String) -> String {
        let rows = plans.count, columns = plans.first?.count ?? 0
        let cellWidth = 150, cellHeight = 44, left = 90, top = 70
        let width = left + columns * cellWidth + 20, height = top + rows * cellHeight + 40
        let fastest = max(plans.joined().map(\.tokensPerSecond).max() ?? 1, 1e-9)
        var out =
            """
            <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" \
            font-size=\"11\">\n
            """
        out += "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
        for (c, plan) in (plans.first ?? []).enumerated() {
            out +=
                """
                <text x=\"\(left + c * cellWidth + cellWidth / 2)\" y=\"\(top - 10)\" text-anchor=\"middle\" \
                font-weight=\"bold\">\(escape(plan.target))</text>\n
                """
        }
        for (r, row) in plans.enumerated() {
            let y = top + r * cellHeight
            out +=
                """
                <text x=\"\(left - 8)\" y=\"\(y + cellHeight / 2 + 4)\" text-anchor=\"end\" \
                font-weight=\"bold\">\(escape(row.first?.recipe ?? ""))</text>\n
                """
            for (c, plan) in row.enumerated() {
                let x = left + c * cellWidth
                let shade = 0.25 + 0.75 * (plan.tokensPerSecond / fastest).squareRoot()
                let hue = plan.verdict == .fits ? 120 : (plan.verdict == .fitsWithDiskStreaming ? 40 : 0)
                let lightness = plan.verdict == .doesNotFit ? 85 : Int(90 - 45 * shade)
                out +=
                    """
                    <rect x=\"\(x + 1)\" y=\"\(y + 1)\" width=\"\(cellWidth - 2)\" height=\"\(cellHeight - 2)\" \
                    fill=\"hsl(\(hue),55%,\(lightness)%)\"><title>\(escape(plan.command))</title></rect>\n
                    """
                let speed = plan.verdict == .doesNotFit ? "does not fit" : String(format: "%.1f tok/s", plan.tokensPerSecond)
                out += "<text x=\"\(x + cellWidth / 2)\" y=\"\(y + 18)\" text-anchor=\"middle\" font-weight=\"bold\">\(speed)</text>\n"
                out +=
                    "<text x=\"\(x + cellWidth / 2)\" y=\"\(y + 33)\" text-anchor=\"middle\">"
                    + String(format: "%.0f / %.0f / %.0f GB", plan.fastBytes / 1e9, plan.ramBytes / 1e9, plan.diskBytes / 1e9) + "</text>\n"
            }
        }
        out +=
            """
            <text x=\"10\" y=\"\(height - 14)\">green: fits · amber: streams experts from disk · red: does not fit · darker: faster · \
            cells: GB on GPU (or unified) / RAM / disk</text>\n
            """
        return out + "</svg>\n"
    }

    public static func html(_ plans: [[Plan]], svg: String, title: String) -> String {
        var out = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>\(escape(title))</title>\n"
        out +=
            """
            <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px \
            8px;font-size:12px}</style></head><body>\n
            """
        out += svg
        out +=
            """
            <h2>llama.cpp commands</h2>\n<table><tr><th>recipe</th><th>target</th><th>verdict</th><th>decode tok/s</th><th>prefill \
            tok/s</th><th>command</th></tr>\n
            """
        for plan in plans.joined() {
            out +=
                "<tr><td>\(escape(plan.recipe))</td><td>\(escape(plan.target))</td><td>\(plan.verdict.rawValue)</td><td>"
                + String(format: "%.1f", plan.tokensPerSecond) + "</td><td>" + String(format: "%.0f", plan.prefillTokensPerSecond)
                + "</td><td><code>\(escape(plan.command))</code></td></tr>\n"
        }
        return out
            + """
            </table>\n<p>Efficiency factors and their calibration: formats/hardware/README.md in the moeq \
            repository.</p>\n</body></html>\n
            """
    }
}
