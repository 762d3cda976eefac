import Foundation
import KVM
import Logging
import Synchronization
import TestSupport
import Testing

@testable import VMM

/// Guests on the real /dev/kvm.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct VirtualMachineTests {
    let system: KVM.System
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        system = try KVM.System()
    }

    func makeVM(
        _ guest: String, vcpus: Int = 1, memoryMiB: UInt64 = 64, commandLine: String = "",
        stream: (@Sendable ([UInt8]) -> Bool)? = nil
    ) throws -> VirtualMachine {
        var configuration = VMConfiguration(name: guest)
        configuration.vcpuCount = vcpus
        configuration.memoryBytes = memoryMiB << 20
        configuration.commandLine = commandLine
        let image = try ELFLoader.parse(
            try TestSupport.guestBytes(guest), loadable: BootLayout.imageBase..<configuration.memoryBytes)
        return try VirtualMachine(
            system: system, configuration: configuration, image: image, logger: logger, consoleStream: stream)
    }

    func console(_ vm: VirtualMachine) -> String { String(decoding: vm.consoleOutput, as: UTF8.self) }

    /// A consumer that never takes the output (a stdout pipe nobody drains) never holds
    /// up a vCPU or `stop`: output is dropped and counted instead.
    @Test func aStuckConsoleConsumerNeverBlocksTheVM() throws {
        let release = DispatchSemaphore(value: 0)
        let vm = try makeVM("churn", memoryMiB: 16) { _ in
            release.wait()
            return true
        }
        try vm.start()
        // Until the guest has converted a while with its console consumer stuck (a loaded host gets
        // there later, never differently); what is still queued at the end is dropped and counted.
        for _ in 0..<6000 where vm.statistics.total(decision: .applied) <= 100 { usleep(10_000) }
        // Stop on another thread: if it waited for the consumer it would never return, and the
        // bound below turns that hang into a failure (a loaded host takes milliseconds, not minutes).
        let stopped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            vm.stop(reason: "test")
            stopped.signal()
        }
        let returned = stopped.wait(timeout: .now() + 120) == .success
        #expect(returned, "stop() waited for a console consumer that never takes its output")
        guard returned else {
            release.signal()
            return
        }
        #expect(vm.statistics.total(decision: .applied) > 100)
        vm.finishConsoleStream()
        #expect(vm.droppedConsoleBytes > 0)
        release.signal()
    }

    @Test func aFailingConsoleConsumerStopsTheStreamNotTheVM() throws {
        let calls = Mutex(0)
        let vm = try makeVM("churn", memoryMiB: 16, commandLine: "300") { _ in
            calls.withLock { $0 += 1 }
            return false
        }
        try vm.start()
        #expect(vm.waitUntilFinished(timeout: .seconds(60)))
        #expect(vm.lifecycle.exitStatus == 0)
        vm.finishConsoleStream()
        #expect(calls.withLock { $0 } == 1)
        #expect(vm.droppedConsoleBytes > 0)
    }

    @Test func helloPrintsAndExitsZero() throws {
        let streamed = Mutex<[UInt8]>([])
        let vm = try makeVM("hello") { bytes in
            streamed.withLock { $0 += bytes }
            return true
        }
        try vm.start()
        #expect(vm.waitUntilFinished(timeout: .seconds(10)))
        vm.finishConsoleStream()
        #expect(console(vm) == "hello from vcpu 0\n")
        #expect(streamed.withLock { $0 } == Array("hello from vcpu 0\n".utf8))
        #expect(vm.state == .stopped && vm.lifecycle.exitStatus == 0)
    }

    @Test func smpEveryVCPUPrintsItsIndex() throws {
        let vm = try makeVM("smp", vcpus: 2)
        try vm.start()
        #expect(vm.waitUntilFinished(timeout: .seconds(10)))
        let lines = console(vm).split(separator: "\n").map(String.init)
        #expect(Set(lines) == ["vcpu 0 of 2", "vcpu 1 of 2", "all vcpus done"])
        #expect(lines.last == "all vcpus done")
        #expect(vm.lifecycle.exitStatus == 0)
    }

    @Test func bootInfoReachesTheGuestIntact() throws {
        let vm = try makeVM("bootinfo", vcpus: 3, memoryMiB: 128, commandLine: "alpha beta")
        try vm.start()
        #expect(vm.waitUntilFinished(timeout: .seconds(10)))
        var fields: [String: String] = [:]
        for line in console(vm).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
        let layout = vm.layout
        #expect(fields["magic"] == "0x4942474d")
        #expect(fields["abi_version"] == "0x1")
        #expect(fields["vcpu_count"] == "0x3")
        #expect(fields["ram_size"] == hex(128 << 20))
        #expect(fields["boot_region_size"] == hex(layout.bootRegionSize))
        #expect(fields["data_ram_start"] == hex(layout.dataRAM.lowerBound))
        #expect(fields["data_ram_size"] == hex(UInt64(layout.dataRAM.count)))
        #expect(fields["shared_mask"] == hex(1 << 40))
        #expect(fields["stack_top"] == hex(layout.stackTop(vcpu: 0)))
        #expect(fields["cmdline"] == "alpha beta")
        #expect(fields["last_byte"] == "0x5a")
        #expect(vm.readMemory(at: layout.ramSize - 1, count: 1) == [0x5A])
        #expect(vm.lifecycle.exitStatus == 3)
    }

    /// One VM triple-faults while another in the same process runs on and exits 0.
    @Test func crashIsIsolated() throws {
        let survivor = try makeVM("spin-io", commandLine: "20000")
        let crasher = try makeVM("crash")
        try survivor.start()
        try crasher.start()
        #expect(crasher.waitUntilFinished(timeout: .seconds(10)))
        #expect(crasher.state == .crashed)
        #expect(crasher.lifecycle.reason?.contains("KVM_EXIT_SHUTDOWN") == true)
        #expect(survivor.waitUntilFinished(timeout: .seconds(30)))
        #expect(survivor.state == .stopped && survivor.lifecycle.exitStatus == 0)
        #expect(console(survivor) == "spin-io done\n")
    }

    @Test(arguments: [("port", "I/O IN port 0x1234"), ("mmio", "MMIO read")])
    func unhandledExitFailsTheVM(mode: String, described: String) throws {
        let vm = try makeVM("unhandled", commandLine: mode)
        try vm.start()
        #expect(vm.waitUntilFinished(timeout: .seconds(10)))
        #expect(vm.state == .failed)
        let reason = vm.lifecycle.reason ?? ""
        #expect(reason.contains("unhandled exit") && reason.contains(described))
    }

    func counter(_ vm: VirtualMachine) -> UInt64 {
        vm.readMemory(at: vm.layout.dataRAM.lowerBound, count: 8).enumerated()
            .reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    func waitForProgress(_ vm: VirtualMachine, beyond value: UInt64) -> Bool {
        for _ in 0..<15_000 where counter(vm) <= value { usleep(2000) }
        return counter(vm) > value
    }

    @Test func pauseStopsProgressAndResumeContinues() throws {
        let vm = try makeVM("spin-io", vcpus: 2, commandLine: "forever")
        try vm.start()
        #expect(waitForProgress(vm, beyond: 0))
        try vm.pause()
        #expect(vm.state == .paused)
        let frozen = counter(vm)
        usleep(50_000)
        #expect(counter(vm) == frozen)
        #expect(throws: LifecycleError(state: .paused, event: "pause")) { try vm.pause() }
        try vm.resume()
        #expect(vm.state == .running)
        #expect(waitForProgress(vm, beyond: frozen))
        // Pause and resume again, then stop while paused.
        try vm.pause()
        vm.stop(reason: "test done")
        #expect(vm.state == .stopped && vm.lifecycle.reason == "test done")
        #expect(throws: LifecycleError(state: .stopped, event: "resume")) { try vm.resume() }
    }

    @Test func timeoutLeavesTheVMRunningUntilStopped() throws {
        let vm = try makeVM("spin-io", commandLine: "forever")
        try vm.start()
        #expect(!vm.waitUntilFinished(timeout: .milliseconds(200)))
        #expect(vm.state == .running)
        vm.stop(reason: "timeout")
        #expect(vm.waitUntilFinished(timeout: .seconds(5)))
        #expect(vm.state == .stopped && vm.lifecycle.reason == "timeout")
    }

    @Test func creationErrorsAreSpecific() throws {
        #expect(throws: VMCreationError.self) { try makeVM("hello", vcpus: 65) }
        do {
            _ = try makeVM("hello", memoryMiB: 3)
            Issue.record("a 3 MiB VM (not a multiple of 2 MiB) should not be created")
        } catch let error as VMCreationError {
            #expect(error.description.contains("RAM size"))
        }
    }

    @Test func hypercallProbeMatchesTheCapability() throws {
        let result = HypercallProbe.run(system: system, deadline: .milliseconds(300), logger: logger)
        if system.check(.exitHypercall) & (1 << 12) == 0 {
            #expect(result.outcome == .unavailable)
        } else {
            #expect(result.outcome != .unavailable, "probe VM could not run: \(result.detail)")
        }
        let report = HostReport(
            kernel: "k", capabilities: system.capabilityReport(), hypercallProbe: result,
            aliasProbe: AliasProbeResult(outcome: .mmioExit, detail: ""))
        #expect(report.conversionTransport == (result.outcome == .exitsToUserspace ? .vmcall : .port))
    }

    /// On this project's machines a closed page exits as MMIO (docs/KVM-ABI.md; the README's *Memory conversions*), so the probe picks
    /// protect; wherever it runs, a VM left to choose gets what the probe chose.
    @Test func aliasProbeDecidesTheMechanismVMsGet() throws {
        let result = AliasProbe.run(system: system, logger: logger)
        #expect(result.outcome != .unavailable, "probe VM could not run: \(result.detail)")
        #expect(result.mechanism == result.outcome.mechanism)
        // Which outcome depends on the host (MMIO under kvm_pvm, EFAULT on VMX/SVM): the contract is that VMs follow it.
        print("alias probe on this host: \(result.outcome) → \(result.mechanism)")
        let vm = try makeVM("hello")
        #expect(vm.aliasMechanism == AliasProbe.cached(system: system, logger: logger).mechanism)
        let report = HostReport(
            kernel: "k", capabilities: system.capabilityReport(),
            hypercallProbe: HypercallProbeResult(outcome: .spins, detail: ""), aliasProbe: result)
        #expect(report.aliasMechanism == result.mechanism)
        let overridden = HostReport(
            kernel: "k", capabilities: system.capabilityReport(),
            hypercallProbe: HypercallProbeResult(outcome: .spins, detail: ""), aliasProbe: result,
            aliasMechanism: .memslot)
        #expect(overridden.aliasMechanism == .memslot)
    }
}

extension VirtualMachineTests {
    /// Dropping the last reference to a running VM stops its vCPU threads and
    /// frees its KVM objects (their fds close in deinit).
    @Test func destroyingARunningVMReleasesItsResources() throws {
        weak var kvmVM: KVM.VM?
        weak var vcpu: VCPU?
        do {
            let vm = try makeVM("spin-io", vcpus: 2, commandLine: "forever")
            try vm.start()
            #expect(waitForProgress(vm, beyond: 0))
            kvmVM = vm.kvmVM
            vcpu = vm.vcpus.last
            #expect(kvmVM != nil && vcpu != nil)
        }
        // The vCPU threads drop their references as they finish, just after stop() returns.
        for _ in 0..<6000 where vcpu != nil || kvmVM != nil { usleep(5000) }
        #expect(vcpu == nil, "a vCPU outlived its VM")
        #expect(kvmVM == nil, "the KVM VM outlived its VirtualMachine")
    }
}
