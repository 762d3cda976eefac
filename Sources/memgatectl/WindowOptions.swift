import ArgumentParser
import Controller

/// `--vm`, `--since` and `--until`: which VM and which stretch of time a read or a replay
/// covers. One group for every command that takes them, so their forms and help agree.
struct WindowOptions: ParsableArguments {
    @Option(help: "Only this VM id; needs one host (--host, or a --select that leaves one), since VM ids are per host.")
    var vm: Int64?
    @Option(
        help: """
            At or after this time: 15m (ago; s, m, h, d), RFC 3339 (2026-11-27T10:00:00Z) or nanoseconds since the epoch \
            with their unit (1795773600000000000ns).
            """)
    var since: String?
    @Option(help: "Before this time (the same forms as --since).")
    var until: String?

    func validate() throws {
        if let vm, vm < 1 { throw ValidationError("--vm must be a positive VM id") }
        _ = try resolved(now: TimeFlag.nowNanos())
    }

    /// The window in nanoseconds since the epoch, relative times counted back from `now`.
    func resolved(now: UInt64) throws -> (since: UInt64?, until: UInt64?) {
        let since = try TimeFlag.nanos(self.since, flag: "--since", now: now)
        let until = try TimeFlag.nanos(self.until, flag: "--until", now: now)
        if let since, let until, until <= since { throw ValidationError("--until must be after --since") }
        return (since, until)
    }

    /// VM ids are per host: `--vm N` over several hosts would mix VM N of every host, so it needs exactly one.
    func requireOneHost(_ hosts: [HostEntry]) throws {
        guard vm != nil, hosts.count != 1 else { return }
        throw CtlFailure.usage(
            "--vm names a VM of one host, and \(counted(hosts.count, "host")) are selected; give --host URL or a --select that leaves one"
        )
    }
}
