import Foundation

/// Host-wide limits the agent divides among its VMs.
public enum HostLimits {
    /// `vm.max_map_count`: how many mappings one process may have (shared by every VM of the agent).
    public static func maxMapCount(path: String = "/proc/sys/vm/max_map_count") -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The default when /proc does not say (Linux's own default).
    public static let defaultMaxMapCount = 65530
}
