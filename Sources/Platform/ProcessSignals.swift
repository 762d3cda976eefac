import Glibc

/// A daemon's signals (SIGINT and SIGTERM end it, SIGHUP reloads): blocked in
/// every thread (call before starting any), then taken synchronously by one
/// waiting thread.
public enum ProcessSignals {
    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (inherited by threads it
    /// starts) and ignores SIGPIPE, so a closed peer never kills the process.
    public static func blockTermination() {
        signal(SIGPIPE, SIG_IGN)
        var set = terminationSet()
        // Safety: a local sigset_t passed by pointer; the old mask is not needed.
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for SIGINT, SIGTERM or SIGHUP and returns which arrived.
    public static func waitForSignal() -> Int32 {
        var set = terminationSet()
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }

    /// Wakes `waitForTermination` as SIGTERM would (from any thread).
    public static func requestTermination() {
        // Safety: sends SIGTERM to this process, which every thread blocks and the main thread sigwaits for.
        kill(getpid(), SIGTERM)
    }

    private static func terminationSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        return set
    }
}
