// `moeq plan --svg F / --html F`: decode tokens/s against file size, one line per target (no JavaScript). A filled
// marker fits in fast memory + RAM, a hollow one streams experts from disk, a cross on the floor does not fit. The
// HTML page adds the terminal's table and lines (verdicts, picks, commands, budgets) cell for cell.
import Foundation

public enum PlanChart {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Distinct hues for up to ten targets, then repeating.
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]

    /// `plans[recipe][target]`; `sizes[recipe]` the file bytes.
    public static func svg(_ plans: [[Plan]], sizes: [Int], title: String) -> String {
        let columns = plans.first?.count ?? 0
        let (left, top, plotWidth, plotHeight) = (70.0, 50.0, 620.0, 340.0)
        let legendWidth = 260.0
        let width = Int(left + plotWidth + legendWidth), height = Int(top + plotHeight + 70)
        // x: GB, linear from 0; y: tokens/s, log10 over the decades the plans span.
        let maxGB = max((sizes.max() ?? 1), 1)
        let xMax = niceCeiling(Double(maxGB) / 1e9)
        let speeds = plans.joined().filter { $0.verdict != .doesNotFit && $0.tokensPerSecond > 0 }.map(\.tokensPerSecond)
        let low = floor(log10(max(speeds.min() ?? 1, 1e-3))), high = max(ceil(log10(max(speeds.max() ?? 10, 1e-3))), low + 1)
        func x(_ bytes: Int) -> Double { left + Double(bytes) / 1e9 / xMax * plotWidth }
        func y(_ speed: Double) -> Double { top + plotHeight - (log10(max(speed, 1e-3)) - low) / (high - low) * plotHeight }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var out =
            """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="11">
            <text x="10" y="20" font-size="14" font-weight="bold">\(escape(title))</text>
            <rect x="\(f(left))" y="\(f(top))" width="\(f(plotWidth))" height="\(f(plotHeight))" fill="none" stroke="#888"/>\n
            """
        for decade in Int(low)...Int(high) {
            let yy = y(pow(10, Double(decade)))
            out += "<line x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(yy))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(tickLabel(pow(10, Double(decade))))</text>\n"
        }
        for i in 0...5 {
            let gb = xMax * Double(i) / 5, xx = left + plotWidth * Double(i) / 5
            out += "<line x1=\"\(f(xx))\" y1=\"\(f(top))\" x2=\"\(f(xx))\" y2=\"\(f(top + plotHeight))\" stroke=\"#eee\"/>\n"
            out += "<text x=\"\(f(xx))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(tickLabel(gb))</text>\n"
        }
        out +=
            """
            <text x="\(f(left + plotWidth / 2))" y="\(f(top + plotHeight + 34))" text-anchor="middle">file size (GB)</text>
            <text x="16" y="\(f(top + plotHeight / 2))" text-anchor="middle" transform="rotate(-90 16 \(f(top + plotHeight / 2)))">\
            decode tokens/s (log scale)</text>\n
            """
        let order = sizes.indices.sorted { sizes[$0] < sizes[$1] }
        for t in 0..<columns {
            let colour = palette[t % palette.count]
            let running = order.filter { plans[$0][t].verdict != .doesNotFit }
            if running.count > 1 {
                let points = running.map { "\(f(x(sizes[$0]))),\(f(y(plans[$0][t].tokensPerSecond)))" }.joined(separator: " ")
                out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"/>\n"
            }
            for r in order {
                let plan = plans[r][t]
                let tip = "<title>\(escape(plan.recipe)) on \(escape(plan.target)): \(plan.verdict.rawValue), \(speedText(plan))</title>"
                let xx = x(sizes[r])
                switch plan.verdict {
                case .doesNotFit:
                    let yy = top + plotHeight - 4
                    out +=
                        """
                        <path class="point" d="M\(f(xx - 3)),\(f(yy - 3))l6,6m0,-6l-6,6" stroke="\(colour)" stroke-width="1.5">\(tip)</path>\n
                        """
                default:
                    let fill = plan.verdict == .fits ? colour : "white"
                    out +=
                        """
                        <circle class="point" cx="\(f(xx))" cy="\(f(y(plan.tokensPerSecond)))" r="3.5" fill="\(fill)" \
                        stroke="\(colour)" stroke-width="1.5">\(tip)</circle>\n
                        """
                }
            }
            let ly = top + 14 + Double(t) * 18, lx = left + plotWidth + 16
            out += "<rect x=\"\(f(lx))\" y=\"\(f(ly - 9))\" width=\"12\" height=\"10\" fill=\"\(colour)\"/>\n"
            out += "<text x=\"\(f(lx + 18))\" y=\"\(f(ly))\">\(escape(plans.first?[t].target ?? ""))</text>\n"
        }
        out +=
            """
            <text x="10" y="\(height - 10)">filled: fits in fast memory + RAM · hollow: streams experts from disk · \
            cross: does not fit · hover a point for its recipe</text>
            </svg>\n
            """
        return out
    }

    /// The page: the chart, then the terminal's table (`header`, `rows`) and its lines, then every plan's command.
    public static func html(
        _ plans: [[Plan]], svg: String, title: String, header: [String], rows: [[String]], lines: [String]
    )
        -> String
    {
        var out =
            """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;\
            padding:4px 8px;font-size:12px;white-space:nowrap}code{font-size:11px}</style></head><body>
            <h1>\(escape(title))</h1>\n
            """
        out += svg
        out += "<table id=\"matrix\"><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        for row in rows { out += "<tr>" + row.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n" }
        out += "</table>\n<ul id=\"lines\">\n" + lines.map { "<li>\(escape($0))</li>\n" }.joined() + "</ul>\n"
        out +=
            """
            <h2>llama.cpp commands</h2>
            <table id="commands"><tr><th>recipe</th><th>target</th><th>verdict</th><th>decode tok/s</th><th>prefill tok/s</th>\
            <th>command</th></tr>\n
            """
        for plan in plans.joined() {
            out +=
                "<tr><td>\(escape(plan.recipe))</td><td>\(escape(plan.target))</td><td>\(plan.verdict.rawValue)</td><td>"
                + String(format: "%.1f", plan.tokensPerSecond) + "</td><td>" + String(format: "%.0f", plan.prefillTokensPerSecond)
                + "</td><td><code>\(escape(plan.command))</code></td></tr>\n"
        }
        return out
            + """
            </table>
            <p>Efficiency factors and their calibration: formats/hardware/README.md in the moeq repository.</p>
            </body></html>\n
            """
    }

    static func speedText(_ plan: Plan) -> String {
        plan.verdict == .doesNotFit ? "does not fit" : String(format: "%.1f tok/s", plan.tokensPerSecond)
    }

    /// 1, 2 or 5 × a power of ten at or above `value`.
    static func niceCeiling(_ value: Double) -> Double {
        let magnitude = pow(10, floor(log10(max(value, 1e-9))))
        for step in [1.0, 2, 5, 10] where step * magnitude >= value { return step * magnitude }
        return 10 * magnitude
    }

    static func tickLabel(_ value: Double) -> String {
        value >= 1 || value == 0
            ? String(format: "%g", value.rounded() == value ? value : (value * 10).rounded() / 10) : String(format: "%g", value)
    }
}
