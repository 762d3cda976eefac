/// A line diff (longest common subsequence): `- old` and `+ new` lines, context omitted. Pure.
public enum LineDiff {
    public static func diff(_ old: [String], _ new: [String]) -> [String] {
        let n = old.count, m = new.count
        var lengths = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                lengths[i][j] = old[i] == new[j] ? lengths[i + 1][j + 1] + 1 : max(lengths[i + 1][j], lengths[i][j + 1])
            }
        }
        var out: [String] = []
        var i = 0, j = 0
        while i < n || j < m {
            if i < n, j < m, old[i] == new[j] {
                i += 1
                j += 1
            } else if j < m, i == n || lengths[i][j + 1] >= lengths[i + 1][j] {
                out.append("+ " + new[j])
                j += 1
            } else {
                out.append("- " + old[i])
                i += 1
            }
        }
        return out
    }
}
