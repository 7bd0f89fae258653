// The one printer of the terminal tables every command shows: each column as wide as its widest cell (title
// included), two spaces between columns, numbers right-aligned, no trailing blanks.
import Foundation

struct TextTable {
    enum Alignment { case left, right }

    struct Column {
        let title: String
        let alignment: Alignment
        init(_ title: String, _ alignment: Alignment = .left) {
            self.title = title
            self.alignment = alignment
        }
    }

    let columns: [Column]
    private(set) var rows: [[String]] = []

    init(_ columns: [Column]) { self.columns = columns }

    /// Left-aligned columns with these titles.
    init(titles: String...) { columns = titles.map { Column($0) } }

    /// A row; missing cells are blank, extra cells are a programming error.
    mutating func add(_ cells: [String]) {
        precondition(cells.count <= columns.count, "a row of \(cells.count) cells in a \(columns.count)-column table")
        rows.append(cells + Array(repeating: "", count: columns.count - cells.count))
    }

    mutating func add(_ cells: String...) { add(cells) }

    /// Widths in characters (grapheme clusters: "×" and "≤" count one).
    var widths: [Int] {
        columns.indices.map { c in max(columns[c].title.count, rows.map { $0[c].count }.max() ?? 0) }
    }

    /// The table as lines, title line first.
    var lines: [String] {
        let widths = widths
        func line(_ cells: [String]) -> String {
            var text = ""
            for (c, cell) in cells.enumerated() {
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                if c > 0 { text += "  " }
                text += columns[c].alignment == .right ? pad + cell : cell + pad
            }
            while text.last == " " { text.removeLast() }
            return text
        }
        return [line(columns.map(\.title))] + rows.map(line)
    }

    func print() { for line in lines { Swift.print(line) } }
}
