// Rows split into contiguous, non-empty shares for threads: every caller that spreads rows over threads uses this, so
// no share is ever an inverted or empty range (8 rows on 6 threads is 4 shares of 2, 256 rows on 48 threads 43 of 6).

/// `rows` rows cut into at most `threads` contiguous shares of equal size (the last may be shorter), none empty.
public struct RowPartition: RandomAccessCollection, Sendable {
    public let rows: Int
    /// Rows per share.
    public let share: Int
    public let count: Int

    public init(rows: Int, threads: Int) {
        self.rows = Swift.max(rows, 0)
        let useful = Swift.max(1, Swift.min(threads, self.rows))
        share = Swift.max(1, (self.rows + useful - 1) / useful)
        count = self.rows == 0 ? 1 : (self.rows + share - 1) / share
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(part: Int) -> Range<Int> { Swift.min(rows, part * share)..<Swift.min(rows, (part + 1) * share) }
}
