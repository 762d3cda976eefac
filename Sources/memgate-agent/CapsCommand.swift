import ArgumentParser
import Foundation
import KVM
import VMM
import VMProcess

struct CapsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caps",
        abstract: "Report this host's KVM: capabilities, usable memory backends, hypercall exits.")

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(
        help: ArgumentHelp(
            "Print only the name of the strongest capability this host has that \(HiddenCapabilities.environmentVariable) can hide, or 'none'.",
            discussion:
                "make check hides it for a second run of the backend suites, so one host proves the fallback too."))
    var strongest = false

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        let logger = logging.makeLogger(label: "memgate.caps")
        let system = try openKVM()
        let report = HostReport.probe(system: system, logger: logger)
        if strongest {
            print(report.strongestCapability?.rawValue ?? "none")
        } else if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            FileHandle.standardOutput.write(try encoder.encode(report))
            print("")
        } else {
            print(
                CapsText.render(report) + "\n"
                    + CapsText.vmProcessLines(cgroupUnavailable: CgroupPlacement().unavailableReason))
        }
    }
}

/// Human-readable form of the host report.
enum CapsText {
    /// What each VM process of `serve` drops once its VM is built, and whether it gets a cgroup here.
    static func vmProcessLines(cgroupUnavailable: String?) -> String {
        [
            "VM process confinement no_new_privs, seccomp (\(VMProcessConfinement.allowedSystemCalls) system calls; any other fails with EPERM)",
            "VM process cgroup      "
                + (cgroupUnavailable.map { "none: \($0); VMs run without one" }
                    ?? "memgate/vm-ID under the cgroup v2 root, memory.max = guest RAM + \(CgroupPlacement.overheadBytes >> 20) MiB + its ring"),
        ].joined(separator: "\n")
    }

    static func render(_ report: HostReport) -> String {
        let caps = report.capabilities
        func yes(_ flag: Bool) -> String { flag ? "yes" : "no" }
        var lines = [
            "kernel                 \(report.kernel)",
            "hidden                 "
                + (caps.hidden.isEmpty
                    ? "nothing" : "\(caps.hidden.joined(separator: ", ")) (\(HiddenCapabilities.environmentVariable))"),
            "KVM API version        \(caps.apiVersion)",
            "VM types               \(caps.vmTypes.map(\.description).joined(separator: ", "))",
            "memory attributes      "
                + caps.memoryAttributesByVMType.sorted { $0.key < $1.key }
                .map { "\($0.key): 0x\(String($0.value, radix: 16))" }.joined(separator: ", "),
            "guest_memfd            \(yes(caps.guestMemfd)) (flags 0x\(String(caps.guestMemfdFlags, radix: 16)))",
            "user memory2           \(yes(caps.userMemory2))",
            "memory fault info      \(yes(caps.memoryFaultInfo))",
            "exit hypercall mask    0x\(String(caps.exitHypercallMask, radix: 16)) (MAP_GPA_RANGE: \(yes(caps.mapGPARangeExitSupported)))",
            "sync regs              0x\(String(caps.syncRegsMask, radix: 16))",
            "vCPUs                  recommended \(caps.vcpusRecommended), max \(caps.vcpusMax)",
            "memslots               \(caps.maxMemslots)",
            "",
            "capabilities (KVM_CHECK_EXTENSION on /dev/kvm):",
        ]
        for capability in Capability.allCases {
            lines.append(
                "  \(capability.description.padding(toLength: 20, withPad: " ", startingAt: 0)) \(caps.system[capability.description] ?? 0)"
            )
        }
        lines.append("")
        lines.append("backends:")
        for backend in report.backends {
            lines.append(
                "  \(backend.name.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(backend.usable ? "usable" : "unusable"): \(backend.reason)"
            )
        }
        lines.append("")
        lines.append(
            "VMCALL hypercall exit  \(report.hypercallProbe.outcome.rawValue): \(report.hypercallProbe.detail)")
        lines.append("conversion transport   \(report.conversionTransport)")
        lines.append("closed-page access     \(report.aliasProbe.outcome.rawValue): \(report.aliasProbe.detail)")
        lines.append("alias mechanism        \(report.aliasMechanism)")
        return lines.joined(separator: "\n")
    }
}
