import APITypes
import AgentHost

/// How a ManagedVM looks on the wire. Pure mapping of one snapshot.
enum VMView {
    static func info(_ vm: ManagedVM) -> VMInfo {
        info(vm, vm.snapshot)
    }

    static func info(_ vm: ManagedVM, _ snapshot: VMSnapshot) -> VMInfo {
        let states = snapshot.pageStates
        var info = VMInfo(
            id: vm.id, name: vm.name, state: snapshot.state, reason: snapshot.lifecycle.reason,
            exitStatus: snapshot.lifecycle.exitStatus, image: vm.imageName, memoryMib: vm.memoryMib, vcpus: vm.vcpus,
            backend: snapshot.backend, initialState: vm.initialState.rawValue,
            commandLine: vm.commandLine, labels: vm.labels, createdNs: vm.createdNanos, startedNs: vm.startedNanos,
            endedNs: vm.endedNanos, privateBytes: states.privateBytes, sharedBytes: states.sharedBytes,
            conversions: snapshot.conversionsByDecision, memoryFaults: snapshot.memoryFaults,
            consoleBytes: snapshot.consoleBytes)
        info.pid = snapshot.pid
        info.policyVersion = snapshot.policyVersion
        info.ringWaits = snapshot.ringWaits
        info.ringWaitSeconds = snapshot.ringWaitNanos.map { Double($0) / 1e9 }
        info.refusedConnections = snapshot.refusedConnections
        return info
    }

    static func memory(_ vm: ManagedVM) -> VMMemory {
        let states = vm.snapshot.pageStates
        return VMMemory(
            vmId: vm.id,
            bootRegion: MemoryRun(start: 0, end: states.bounds.start, state: "boot"),
            dataRamStart: states.bounds.start, dataRamEnd: states.bounds.end,
            privateBytes: states.privateBytes, sharedBytes: states.sharedBytes,
            runs: states.runs.map { MemoryRun(start: $0.range.start, end: $0.range.end, state: $0.state.rawValue) })
    }
}
