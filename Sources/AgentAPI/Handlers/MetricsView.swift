import AgentHost
import VMM

extension AgentAPI {
    /// `GET /metrics`: exits, faults, conversions, VM states, HTTP and SQLite latencies.
    func renderMetrics() -> String {
        var out = PrometheusText()
        let vms = host.vms
        out.help("memgate_vm_exits_total", "KVM_RUN exits of the VMs this agent holds, by reason.", type: "counter")
        var exits: [String: UInt64] = [:]
        var faults: [String: Int] = [:]
        var conversions: [String: Int] = [:]
        var states: [String: Int] = [:]
        for vm in vms {
            for (kind, count) in vm.machine.exitCounts { exits[kind, default: 0] += count }
            let statistics = vm.machine.statistics
            for (source, count) in statistics.faults { faults[source.rawValue, default: 0] += count }
            for (key, count) in statistics.conversions {
                conversions["\(key.direction.rawValue)|\(key.trigger.rawValue)|\(key.decision.rawValue)", default: 0] += count
            }
            states[vm.lifecycle.state.rawValue, default: 0] += 1
        }
        for (kind, count) in exits.sorted(by: { $0.key < $1.key }) {
            out.sample("memgate_vm_exits_total", ["reason": kind], Double(count))
        }
        out.help("memgate_memory_faults_total", "Memory faults of the VMs this agent holds, by source.", type: "counter")
        for (source, count) in faults.sorted(by: { $0.key < $1.key }) {
            out.sample("memgate_memory_faults_total", ["source": source], Double(count))
        }
        out.help("memgate_conversions_total", "Conversions of the VMs this agent holds, by direction, trigger and decision.", type: "counter")
        for (key, count) in conversions.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|").map(String.init)
            out.sample("memgate_conversions_total", ["direction": parts[0], "trigger": parts[1], "decision": parts[2]], Double(count))
        }
        out.help("memgate_vms", "VMs this agent holds, by state.", type: "gauge")
        for state in VMState.allCases {
            out.sample("memgate_vms", ["state": state.rawValue], Double(states[state.rawValue] ?? 0))
        }
        metrics.render(into: &out)
        if let store = host.store {
            out.help("memgate_sqlite_commit_duration_seconds", "Time of one event-store commit (a group of events).", type: "histogram")
            out.histogram("memgate_sqlite_commit_duration_seconds", [:], store.commitLatency)
        }
        return out.text
    }
}
