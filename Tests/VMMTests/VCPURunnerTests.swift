import Foundation
import KVM
import Logging
import MemoryModel
import Synchronization
import Testing

@testable import VMM

/// A vCPU that replays nothing and records what the loop asked of it.
final class FakeVCPU: VCPUChannel, @unchecked Sendable {
    let index: UInt32 = 0
    var regs = Registers()
    var hypercallResults: [UInt64] = []
    var mmioReads: [UInt64] = []
    var inValues: [UInt64] = []
    var registerWrites = 0
    var out: [UInt8] = []

    func run() throws(KVMError) -> VCPUExit { .hlt }
    func outData(of io: IOExit) -> [UInt8] { out }
    func completeIn(_ io: IOExit, value: UInt64) { inValues.append(value) }
    func completeMMIORead(value: UInt64) { mmioReads.append(value) }
    func completeHypercall(returning value: UInt64) { hypercallResults.append(value) }
    func registers() throws(KVMError) -> Registers { regs }
    func setRegisters(_ registers: Registers) throws(KVMError) {
        regs = registers
        registerWrites += 1
    }
    var syncedRegisters: Registers { regs }
    func setSyncedRegisters(_ registers: Registers) {
        regs = registers
        registerWrites += 1
    }
}

/// `VCPURunner.handle` on fabricated exits: what each exit means, without KVM
/// (as Firecracker tests `handle_kvm_exit`). The engine runs on anonymous memory.
@Suite struct VCPURunnerTests {
    let dataRAM = PageRange(start: 0x20_0000, size: 16 * 4096)
    let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func runner(
        _ vcpu: FakeVCPU, policy: String = "{}", events: InMemoryEventSink = InMemoryEventSink(),
        control: VMControl = VMControl(kickers: [])
    ) throws -> VCPURunner {
        let stores = GuestStores(
            bootRegion: try HostMemory.anonymous(size: 0x20_0000), dataRAM: dataRAM, privateFile: nil,
            privateMemory: try HostMemory.anonymous(size: Int(dataRAM.size)),
            sharedMemory: try HostMemory.anonymous(size: Int(dataRAM.size)))
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try ProtectAliasBackend(
            stores: stores, ops: RecordingOps(), sharedMask: 1 << 40, initial: initial, firstSlot: 1, runLimit: 64)
        let engine = ConversionEngine(
            vmID: 1, vmName: "runner", ramSize: 0x40_0000, initial: initial, backend: backend,
            policies: PolicyStore(try VersionedPolicy(document: Array(policy.utf8))), sink: events,
            clock: ManualClock(), recordingBudget: nil, logger: quiet)
        return VCPURunner(
            vcpu: vcpu, kicker: nil, control: control,
            console: ConsoleOutput(capacity: 4096, vcpuCount: 1, name: "t", stream: nil),
            engine: engine, syncHandler: nil, registerSync: false, gate: nil, runNanos: RunTimer(),
            exits: ExitCounters(vcpus: 1), logger: quiet)
    }

    func out(_ port: UInt16, _ value: UInt64, size: UInt8 = 4) -> VCPUExit {
        .io(IOExit(direction: .out, port: port, size: size, count: 1, dataOffset: 0, value: value))
    }

    @Test func portExitsResumeOrEndTheVM() throws {
        let vcpu = FakeVCPU()
        let loop = try runner(vcpu)
        var stuck = StuckFaults()
        vcpu.out = Array("hi\n".utf8)
        #expect(loop.handle(out(PortMap.console, 0x68, size: 1), stuck: &stuck) == .resume)
        #expect(loop.handle(out(PortMap.heartbeat, 0), stuck: &stuck) == .resume)
        #expect(
            loop.handle(
                .io(
                    IOExit(direction: .in, port: PortMap.consoleLineStatus, size: 1, count: 1, dataOffset: 0, value: 0)),
                stuck: &stuck) == .resume)
        #expect(vcpu.inValues == [PortMap.lineStatusIdle])
        #expect(loop.handle(out(PortMap.exit, 3), stuck: &stuck) == .stop(.guestExited(status: 3)))
        guard case .stop(.fail(let reason)?) = loop.handle(out(0x1234, 1), stuck: &stuck) else {
            Issue.record("an unknown port must fail the VM")
            return
        }
        #expect(reason.contains("unhandled exit"))
    }

    @Test func haltsCrashesAndUnknownExits() throws {
        let vcpu = FakeVCPU()
        let loop = try runner(vcpu)
        var stuck = StuckFaults()
        #expect(loop.handle(.hlt, stuck: &stuck) == .stop(nil), "a halted vCPU stops; the VM goes on without it")
        guard case .stop(.crash?) = loop.handle(.shutdown, stuck: &stuck) else {
            Issue.record("a triple fault crashes the VM")
            return
        }
        for exit in [
            VCPUExit.unsupported(reason: 77, detail: "x"), .internalError(suberror: 1, data: []),
            .failEntry(hardwareReason: 1, cpu: 0), .systemEvent(type: 1, data: []),
        ] {
            guard case .stop(.fail?) = loop.handle(exit, stuck: &stuck) else {
                Issue.record("\(exit) must fail the VM")
                continue
            }
        }
    }

    @Test func interruptedResumesUnlessTheVMIsStopping() throws {
        let control = VMControl(kickers: [])
        let loop = try runner(FakeVCPU(), control: control)
        var stuck = StuckFaults()
        #expect(loop.handle(.interrupted, stuck: &stuck) == .resume)
        control.finish(.stop(reason: "test"))
        #expect(loop.handle(.interrupted, stuck: &stuck) == .stop(nil))
    }

    @Test func hypercallsAndThePortTransportConvert() throws {
        let vcpu = FakeVCPU()
        let events = InMemoryEventSink()
        let loop = try runner(vcpu, events: events)
        var stuck = StuckFaults()
        // Another hypercall number: -KVM_ENOSYS, and the guest goes on.
        #expect(loop.handle(.hypercall(HypercallExit(number: 99)), stuck: &stuck) == .resume)
        #expect(vcpu.hypercallResults == [GuestErrorCode.notSupported.raxValue])
        // KVM_HC_MAP_GPA_RANGE through the exit: one page to shared.
        #expect(
            loop.handle(
                .hypercall(HypercallExit(number: Hypercall.mapGPARange, arg0: dataRAM.start, arg1: 1, arg2: 0)),
                stuck: &stuck) == .resume)
        #expect(vcpu.hypercallResults.last == 0)
        // The same ABI through OUT 0xEB: the result lands in RAX.
        vcpu.regs.rax = Hypercall.mapGPARange
        vcpu.regs.rbx = dataRAM.start + 4096
        vcpu.regs.rcx = 1
        #expect(loop.handle(out(PortMap.hypercall, 0, size: 1), stuck: &stuck) == .resume)
        #expect(vcpu.regs.rax == 0 && vcpu.registerWrites == 1)
        // A request outside data RAM is the guest's error, not the VM's end.
        vcpu.regs.rax = Hypercall.mapGPARange
        vcpu.regs.rbx = 0x1000
        #expect(loop.handle(out(PortMap.hypercall, 0, size: 1), stuck: &stuck) == .resume)
        #expect(vcpu.regs.rax == GuestErrorCode.invalid.raxValue)
        #expect(events.conversions.map(\.decision) == [.applied, .applied, .invalid])
    }

    @Test func retriedFaultsThatChangeNothingEndTheVMAtTheLimit() throws {
        let loop = try runner(FakeVCPU())
        var stuck = StuckFaults()
        // A private access to a page that is already private: nothing to convert, the guest retries.
        let fault = VCPUExit.memoryFault(
            MemoryFaultExit(flags: MemoryFaultExit.flagPrivate, gpa: dataRAM.start, size: 4096))
        for _ in 1..<VCPURunner.stuckFaultLimit { #expect(loop.handle(fault, stuck: &stuck) == .resume) }
        guard case .stop(.fault(let reason)?) = loop.handle(fault, stuck: &stuck) else {
            Issue.record("\(VCPURunner.stuckFaultLimit) faults in a row must fault the VM")
            return
        }
        #expect(reason.contains("no usable backing"))
        // Any other exit in between resets the count.
        stuck = StuckFaults()
        for _ in 0..<(3 * VCPURunner.stuckFaultLimit) {
            #expect(loop.handle(fault, stuck: &stuck) == .resume)
            #expect(loop.handle(out(PortMap.heartbeat, 0), stuck: &stuck) == .resume)
        }
    }

    @Test func aDeniedImplicitFaultFaultsTheVM() throws {
        let loop = try runner(FakeVCPU(), policy: #"{"defaults":{"implicit":"deny"}}"#)
        var stuck = StuckFaults()
        // An access through the shared alias to a private page asks for an implicit conversion, which the policy denies.
        guard
            case .stop(.fault?) = loop.handle(
                .memoryFault(MemoryFaultExit(flags: 0, gpa: dataRAM.start | 1 << 40, size: 4096)), stuck: &stuck)
        else {
            Issue.record("a denied implicit conversion must fault the VM")
            return
        }
    }

    @Test func exitsAreCountedByKind() {
        let counters = ExitCounters(vcpus: 2)
        counters.count(.io, vcpu: 0)
        counters.count(.io, vcpu: 1)
        counters.count(.memoryFault, vcpu: 1)
        let snapshot = Dictionary(uniqueKeysWithValues: counters.snapshot.map { ($0.kind, $0.count) })
        #expect(snapshot["io"] == 2 && snapshot["memory_fault"] == 1 && snapshot["hlt"] == 0)
        #expect(snapshot.count == VCPUExit.Kind.allCases.count)
    }
}
