import AgentHost
import VMM

extension AgentAPI {
    /// `GET /metrics`: exits, faults, conversions, VM states, HTTP and SQLite latencies.
    func renderMetrics() -> String {
        var out = PrometheusText()
        // Counters over every VM since the agent started (deleted ones included): they never go down.
        let totals = host.totals
        out.help("memgate_vm_exits_total", "KVM_RUN exits of the VMs this agent has held, by reason.", type: "counter")
        for (kind, count) in totals.exits.sorted(by: { $0.key < $1.key }) {
            out.sample("memgate_vm_exits_total", ["reason": kind], Double(count))
        }
        out.help("memgate_memory_faults_total", "Memory faults of the VMs this agent has held, by source.", type: "counter")
        for (source, count) in totals.faults.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            out.sample("memgate_memory_faults_total", ["source": source.rawValue], Double(count))
        }
        out.help("memgate_conversions_total", "Conversions of the VMs this agent has held, by direction, trigger and decision.", type: "counter")
        for (key, count) in totals.conversions.sorted(by: { $0.key < $1.key }) {
            out.sample("memgate_conversions_total", ["direction": key.direction.rawValue, "trigger": key.trigger.rawValue,
                                                     "decision": key.decision.rawValue], Double(count))
        }
        var states: [String: Int] = [:]
        for vm in host.vms { states[vm.lifecycle.state.rawValue, default: 0] += 1 }
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
