import APITypes
import AgentHost
import MemoryModel
import Platform
import VMM

extension AgentAPI {
    /// `GET /metrics`: exits, faults, conversions, VM states, HTTP and SQLite latencies.
    func renderMetrics() -> String {
        var out = PrometheusText()
        renderTotals(into: &out)
        renderStreams(into: &out)
        renderVMs(into: &out)
        metrics.render(into: &out)
        renderStore(into: &out)
        renderInfo(into: &out)
        renderProcess(into: &out)
        return out.text
    }

    /// Counters over every VM since the agent started (deleted ones included): they never go down.
    func renderTotals(into out: inout PrometheusText) {
        let totals = host.totals
        out.help("memgate_vm_exits_total", "KVM_RUN exits of the VMs this agent has held, by reason.", type: "counter")
        for (kind, count) in totals.exits.sorted(by: { $0.key < $1.key }) {
            out.sample("memgate_vm_exits_total", ["reason": kind], Double(count))
        }
        out.help(
            "memgate_memory_faults_total", "Memory faults of the VMs this agent has held, by source.", type: "counter")
        for (source, count) in totals.faults.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            out.sample("memgate_memory_faults_total", ["source": source.rawValue], Double(count))
        }
        out.help(
            "memgate_memory_fault_accesses_total",
            "Memory faults of the VMs this agent has held, by access (read, write, exec, unknown).",
            type: "counter")
        for (access, count) in totals.faultAccesses.sorted(by: { $0.key < $1.key }) {
            out.sample("memgate_memory_fault_accesses_total", ["access": access], Double(count))
        }
        out.help(
            "memgate_conversions_total",
            "Conversions of the VMs this agent has held, by direction, trigger and decision.", type: "counter")
        for (key, count) in totals.conversions.sorted(by: { $0.key < $1.key }) {
            out.sample(
                "memgate_conversions_total",
                [
                    "direction": key.direction.rawValue, "trigger": key.trigger.rawValue,
                    "decision": key.decision.rawValue,
                ], Double(count))
        }
        out.help(
            "memgate_converted_bytes_total",
            "Bytes asked to convert by the VMs this agent has held, by direction, trigger and decision.",
            type: "counter")
        for (key, bytes) in totals.convertedBytes.sorted(by: { $0.key < $1.key }) {
            out.sample(
                "memgate_converted_bytes_total",
                [
                    "direction": key.direction.rawValue, "trigger": key.trigger.rawValue,
                    "decision": key.decision.rawValue,
                ], Double(bytes))
        }
        out.help(
            "memgate_conversion_duration_seconds", "From a conversion's request to its completion (applied or failed).",
            type: "histogram")
        out.histogram("memgate_conversion_duration_seconds", [:], totals.conversionLatency)
        out.help(
            "memgate_events_unrecorded_total",
            "Events over a VM's recording budget: counted per second in event_aggregates instead of one row each, by kind.",
            type: "counter")
        for (kind, count) in totals.unrecorded.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            out.sample("memgate_events_unrecorded_total", ["kind": kind.rawValue], Double(count))
        }
    }

    /// The event streams open now, and the readers that fell behind.
    func renderStreams(into out: inout PrometheusText) {
        if let streams {
            out.help("memgate_event_streams", "Event streams (GET /v1/events/stream) open now.", type: "gauge")
            out.sample("memgate_event_streams", [:], Double(streams.openStreams))
            out.help(
                "memgate_event_stream_overflows_total",
                "Event-stream readers that fell behind their buffer and were told where to resume.",
                type: "counter")
            out.sample("memgate_event_stream_overflows_total", [:], Double(streams.overflows))
        }
    }

    /// Per-VM gauges, and the VMs by state.
    func renderVMs(into out: inout PrometheusText) {
        // One look at each VM (a request to its process) serves every per-VM gauge.
        let held = host.vms.map { ($0, $0.snapshot) }
        let pageStates = held.map { ($0.0, $0.1.pageStates) }
        for (state, help) in [(PageState.shared, "shared with the host"), (.private, "private to the guest")] {
            let name = "memgate_vm_\(state.rawValue)_bytes"
            out.help(name, "Data RAM \(help), per VM this agent holds.", type: "gauge")
            for (vm, pages) in pageStates {
                out.sample(
                    name, ["vm_id": "\(vm.id)", "name": vm.name],
                    Double(state == .shared ? pages.sharedBytes : pages.privateBytes))
            }
        }
        var states: [String: Int] = [:]
        for (_, snapshot) in held { states[snapshot.lifecycle.state.rawValue, default: 0] += 1 }
        out.help("memgate_vms", "VMs this agent holds, by state.", type: "gauge")
        for state in VMState.allCases {
            out.sample("memgate_vms", ["state": state.rawValue], Double(states[state.rawValue] ?? 0))
        }
    }

    /// The event store: commit latency and backlog.
    func renderStore(into out: inout PrometheusText) {
        if let store = host.store {
            out.help(
                "memgate_sqlite_commit_duration_seconds", "Time of one event-store commit (a group of events).",
                type: "histogram")
            out.histogram("memgate_sqlite_commit_duration_seconds", [:], store.commitLatency)
            let backlog = store.backlog
            out.help(
                "memgate_event_store_backlog_writes", "Writes queued for the event store and not yet committed.",
                type: "gauge")
            out.sample("memgate_event_store_backlog_writes", [:], Double(backlog.writes))
            out.help(
                "memgate_event_store_lag_seconds",
                "How long the oldest uncommitted write has waited (0 when none waits).", type: "gauge")
            out.sample("memgate_event_store_lag_seconds", [:], backlog.oldestSeconds)
        }
    }

    /// The policy in force and this build, as info gauges.
    func renderInfo(into out: inout PrometheusText) {
        let policy = host.policies.policy
        out.help(
            "memgate_policy_info",
            "The conversion policy in force (1); alert on more than one version across the fleet.", type: "gauge")
        out.sample("memgate_policy_info", ["version": policy.version, "name": policy.policy.name ?? ""], 1)
        out.help("memgate_build_info", "This agent's build (1).", type: "gauge")
        out.sample("memgate_build_info", ["version": BuildInfo.version], 1)
    }

    /// The process metrics Prometheus clients export by convention.
    func renderProcess(into out: inout PrometheusText) {
        if let process = ProcessStats.current() {
            let samples: [(String, String, String, Double)] = [
                (
                    "process_cpu_seconds_total", "User and system CPU time spent in seconds.", "counter",
                    process.cpuSeconds
                ),
                (
                    "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
                    Double(process.residentBytes)
                ),
                (
                    "process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge",
                    Double(process.virtualBytes)
                ),
                (
                    "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", "gauge",
                    process.startTimeSeconds
                ),
                ("process_open_fds", "Number of open file descriptors.", "gauge", Double(process.openFileDescriptors)),
                (
                    "process_max_fds", "Maximum number of open file descriptors.", "gauge",
                    Double(process.maxFileDescriptors)
                ),
            ]
            for (name, help, type, value) in samples {
                out.help(name, help, type: type)
                out.sample(name, [:], value)
            }
        }
    }
}
