/// How many rows one page of a list route answers (`limit=`): the same for every list,
/// the agent's check and the controller's flags.
public enum PageLimit {
    public static let range: ClosedRange<Int> = 1...1000
    public static let `default` = 100
    /// The range as the agent's query parser takes it.
    public static let queryRange: ClosedRange<Int64> = Int64(range.lowerBound)...Int64(range.upperBound)
    /// `from 1 to 1000`, for messages.
    public static let words = "from \(range.lowerBound) to \(range.upperBound)"
}
