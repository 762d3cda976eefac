import Foundation
import KVM
import Logging
import MemoryModel
import Synchronization
import TestSupport

@testable import VMM

/// The host side of the test guests' sync points (Guests/src/selftest.h).
final class SelftestHarness: Sendable {
    static let syncShared: UInt32 = 1
    static let syncPrivate: UInt32 = 2
    static let syncDiscard: UInt32 = 3
    static let syncReady: UInt32 = 4

    private let state = Mutex<(failures: [String], ready: Int, syncs: Int)>(([], 0, 0))

    var failures: [String] { state.withLock { $0.failures } }
    var readyCount: Int { state.withLock { $0.ready } }
    var syncCount: Int { state.withLock { $0.syncs } }

    private func fail(_ message: String) -> UInt64 {
        state.withLock { $0.failures.append(message) }
        return 1
    }

    var handler: SyncHandler {
        SyncHandler { [self] request, memory in
            state.withLock { $0.syncs += 1 }
            let a = request.arguments
            let gpa = a[0], size = Int(a[1])
            switch request.point {
            case Self.syncShared:
                guard let bytes = memory.readShared(gpa: gpa, count: size) else {
                    return fail("SYNC_SHARED: cannot read 0x\(String(gpa, radix: 16))")
                }
                guard let bad = bytes.firstIndex(where: { $0 != UInt8(a[2]) }) else {
                    _ = memory.writeShared([UInt8](repeating: UInt8(a[3]), count: size), gpa: gpa)
                    return 0
                }
                return fail(
                    "SYNC_SHARED vcpu \(request.vcpu): shared byte at 0x\(String(gpa + UInt64(bad), radix: 16)) is 0x\(String(bytes[bad], radix: 16)), expected 0x\(String(a[2], radix: 16))"
                )
            case Self.syncPrivate:
                guard let bytes = memory.readShared(gpa: gpa, count: size) else {
                    return fail("SYNC_PRIVATE: cannot read")
                }
                if let bad = bytes.firstIndex(where: { $0 != UInt8(a[2]) }) {
                    return fail(
                        "SYNC_PRIVATE vcpu \(request.vcpu): shared byte at 0x\(String(gpa + UInt64(bad), radix: 16)) is 0x\(String(bytes[bad], radix: 16)), expected 0x\(String(a[2], radix: 16))"
                    )
                }
                return 0
            case Self.syncDiscard:
                do {
                    try memory.discard(PageRange(start: gpa, size: UInt64(size)), copy: a[2] == 0 ? .private : .shared)
                    return 0
                } catch {
                    return fail("SYNC_DISCARD: \(error)")
                }
            case Self.syncReady:
                state.withLock { $0.ready += 1 }
                return 0
            default:
                return fail("unknown sync point \(request.point)")
            }
        }
    }
}

/// Builds VMs for the conversion tests.
struct ConversionFixture {
    let system: KVM.System
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    init() throws {
        system = try KVM.System()
    }

    func policy(_ json: String) throws -> PolicyStore {
        PolicyStore(try VersionedPolicy(document: Array(json.utf8)))
    }

    func makeVM(
        _ guest: String, vcpus: Int = 1, memoryMiB: UInt64 = 32, commandLine: String = "",
        initialState: PageState = .private, policy: PolicyStore = PolicyStore(), maxRuns: Int? = nil,
        backend: BackendKind = .alias, mechanism: AliasMechanism = .protect, transport: ConversionTransport = .port,
        events: InMemoryEventSink = InMemoryEventSink(), harness: SelftestHarness? = nil
    ) throws -> VirtualMachine {
        var configuration = VMConfiguration(name: guest)
        configuration.vcpuCount = vcpus
        configuration.memoryBytes = memoryMiB << 20
        configuration.commandLine = commandLine
        configuration.initialState = initialState
        configuration.backend = backend
        configuration.maxRuns = maxRuns
        configuration.aliasMechanism = mechanism
        configuration.transport = transport
        configuration.enableHypercallExit = transport == .vmcall
        let image = try ELFLoader.parse(
            try TestSupport.guestBytes(guest), loadable: BootLayout.imageBase..<configuration.memoryBytes)
        return try VirtualMachine(
            system: system, configuration: configuration, image: image, logger: logger,
            policies: policy, events: events, syncHandler: harness?.handler)
    }

    func run(_ vm: VirtualMachine, timeout: Duration = .seconds(120)) throws -> String {
        try vm.start()
        guard vm.waitUntilFinished(timeout: timeout) else {
            vm.stop(reason: "test timeout")
            return "TIMEOUT\n" + String(decoding: vm.consoleOutput, as: UTF8.self)
        }
        if vm.lifecycle.exitStatus == 0 { Self.recordAreas(of: vm) }
        return String(decoding: vm.consoleOutput, as: UTF8.self)
    }

    /// Tells the capability ledger which host-dependent paths a guest that passed went through.
    static func recordAreas(of vm: VirtualMachine) {
        let exits = Dictionary(vm.exitCounts.map { ($0.kind, $0.count) }, uniquingKeysWith: +)
        let explicit = vm.statistics.total(decision: .applied, trigger: .explicit)
        if vm.backendKind == .attributes {
            CapabilityLedger.ran(.attributesBackend, vm.name)
        } else if vm.stores.privateFile != nil {
            CapabilityLedger.ran(.guestMemfdStore, vm.name)
        } else if vm.stores.privateMemory != nil {
            CapabilityLedger.ran(.memfdStore, vm.name)
        }
        if exits["memory_fault", default: 0] > 0 { CapabilityLedger.ran(.memoryFaultExit, vm.name) }
        if explicit > 0, exits["hypercall", default: 0] > 0 { CapabilityLedger.ran(.hypercallExit, vm.name) }
        if explicit > 0, vm.configuration.transport == .port { CapabilityLedger.ran(.pvPort, vm.name) }
    }
}
