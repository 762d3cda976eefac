import AgentHost
import APITypes
import VMM

/// How a ManagedVM looks on the wire. Pure mapping.
enum VMView {
    static func info(_ vm: ManagedVM) -> VMInfo {
        let lifecycle = vm.lifecycle
        let states = vm.machine.pageStates
        let statistics = vm.machine.statistics
        var byDecision: [String: Int] = [:]
        for (key, count) in statistics.conversions { byDecision[key.decision.rawValue, default: 0] += count }
        return VMInfo(id: vm.id, name: vm.name, state: lifecycle.state.rawValue, reason: lifecycle.reason,
                      exitStatus: lifecycle.exitStatus, image: vm.imageName, memoryMib: vm.memoryMib, vcpus: vm.vcpus,
                      backend: vm.machine.backendKind.rawValue, initialState: vm.initialState.rawValue,
                      commandLine: vm.commandLine, labels: vm.labels, createdNs: vm.createdNanos, startedNs: vm.startedNanos,
                      endedNs: vm.endedNanos, privateBytes: states.privateBytes, sharedBytes: states.sharedBytes,
                      conversions: byDecision, memoryFaults: statistics.faults.values.reduce(0, +),
                      consoleBytes: vm.machine.consoleBytes)
    }

    static func memory(_ vm: ManagedVM) -> VMMemory {
        let states = vm.machine.pageStates
        return VMMemory(vmId: vm.id,
                        bootRegion: MemoryRun(start: 0, end: states.bounds.start, state: "boot"),
                        dataRamStart: states.bounds.start, dataRamEnd: states.bounds.end,
                        privateBytes: states.privateBytes, sharedBytes: states.sharedBytes,
                        runs: states.runs.map { MemoryRun(start: $0.range.start, end: $0.range.end, state: $0.state.rawValue) })
    }
}
