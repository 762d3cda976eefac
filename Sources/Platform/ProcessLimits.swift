import Glibc

/// Limits of this process.
public enum ProcessLimits {
    /// Raises this process's open-file limit to its hard limit (a server with
    /// thousands of connections needs more than the usual 1024).
    public static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max
        else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }
}
