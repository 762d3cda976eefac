import Foundation
import TestSupport
import Testing

/// `memgate-agent` as a user runs it: a real process, real guests, real KVM.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct AgentCLITests {
    func agent(_ arguments: String...) throws -> TestSupport.ProcessResult {
        try TestSupport.runAgent(Array(arguments))
    }

    @Test func runStreamsTheConsoleAndExitsWithTheGuestStatus() throws {
        let hello = try agent("run", TestSupport.guestPath("hello"))
        #expect(hello.status == 0)
        #expect(hello.stdout == "hello from vcpu 0\n")
        #expect(hello.stderr.isEmpty)

        let bootinfo = try agent("run", TestSupport.guestPath("bootinfo"), "--vcpus", "3", "--arg", "from-cli")
        #expect(bootinfo.status == 3)
        #expect(bootinfo.stdout.contains("cmdline=from-cli\n"))
    }

    @Test func smpWithTwoVCPUs() throws {
        let result = try agent("run", TestSupport.guestPath("smp"), "--vcpus", "2")
        #expect(result.status == 0)
        #expect(Set(result.stdout.split(separator: "\n")) == ["vcpu 0 of 2", "vcpu 1 of 2", "all vcpus done"])
    }

    @Test func crashPrintsOneLineAndExits125() throws {
        let result = try agent("run", TestSupport.guestPath("crash"))
        #expect(result.status == 125)
        #expect(result.stdout == "crashing now\n")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("guest crashed: vCPU 0 triple-faulted") == true)
    }

    /// The guest SDK's exception handlers write what happened before the vCPU triple-faults.
    @Test func aGuestExceptionIsReportedOnTheConsoleBeforeTheCrash() throws {
        let invalid = try agent("run", TestSupport.guestPath("crash"), "--arg", "ud")
        #expect(invalid.status == 125 && invalid.stderr.contains("triple-faulted"))
        #expect(invalid.stdout.hasPrefix("crashing now\nexception 6 at rip 0x1"), "\(invalid.stdout)")
        let unmapped = try agent("run", TestSupport.guestPath("crash"), "--arg", "pf")
        #expect(unmapped.status == 125)
        #expect(
            unmapped.stdout.contains("exception 14 at rip 0x1") && unmapped.stdout.contains(" cr2 0x8000000000 "),
            "\(unmapped.stdout)")
    }

    @Test func unhandledExitFailsWith126() throws {
        let result = try agent("run", TestSupport.guestPath("unhandled"), "--arg", "port")
        #expect(result.status == 126)
        #expect(result.stderr.contains("VM failed: vCPU 0: unhandled exit: I/O IN port 0x1234"))
    }

    @Test func timeoutStopsTheGuestAndExits124() throws {
        let started = Date()
        let result = try agent("run", TestSupport.guestPath("spin-io"), "--arg", "forever", "--timeout", "0.3")
        #expect(result.status == 124)
        #expect(result.stderr.contains("timeout"))
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func badGuestFilesAreRejectedClearly() throws {
        let missing = try agent("run", "/nonexistent/guest.elf")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot read /nonexistent/guest.elf"))

        let notELF = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-not-elf-\(getpid())")
        try Data(("#!/bin/sh\n" + String(repeating: "echo not a guest\n", count: 8)).utf8).write(to: notELF)
        defer { try? FileManager.default.removeItem(at: notELF) }
        let rejected = try agent("run", notELF.path)
        #expect(rejected.status == 2)
        #expect(rejected.stderr.contains("not an ELF file"))

        let usage = try agent("run", TestSupport.guestPath("hello"), "--memory-mib", "3")
        #expect(usage.status != 0)
        #expect(usage.stderr.contains("--memory-mib must be an even number from 4"))
    }

    @Test func capsReportsEveryField() throws {
        let text = try agent("caps")
        #expect(text.status == 0)
        for label in [
            "kernel", "KVM API version", "VM types", "guest_memfd", "exit hypercall mask", "backends:",
            "attributes", "alias", "VMCALL hypercall exit", "conversion transport", "closed-page access",
            "alias mechanism        ", "VM process confinement", "VM process cgroup      ",
        ] {
            #expect(text.stdout.contains(label), "caps output lacks \(label)")
        }
        // Whether VM processes get a cgroup here follows the host: cgroup v2 mounted (and writable), or a reason.
        let cgroupV2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
        #expect(
            text.stdout.contains("VM process cgroup      none: cgroup v2 is not mounted") == !cgroupV2, "\(text.stdout)"
        )

        let json = try agent("caps", "--json")
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "kernel", "capabilities", "backends", "hypercall_probe", "conversion_transport",
                "alias_probe", "alias_mechanism",
            ])
        let aliasProbe = try #require(object["alias_probe"] as? [String: Any])
        // The outcome is the host's; the mechanism it implies is the contract (a closed page that comes back with its address: protect).
        let outcome = aliasProbe["outcome"] as? String ?? ""
        let probed = ["mmio_exit", "memory_fault_exit"].contains(outcome) ? "protect" : "memslot"
        #expect(
            aliasProbe["mechanism"] as? String == probed && object["alias_mechanism"] as? String == probed, "\(outcome)"
        )
        #expect(
            text.stdout.contains("alias mechanism        protect")
                || text.stdout.contains("alias mechanism        memslot"))
        let caps = try #require(object["capabilities"] as? [String: Any])
        for key in [
            "api_version", "vm_types", "memory_attributes_by_vm_type", "guest_memfd", "guest_memfd_flags",
            "exit_hypercall_mask", "memory_fault_info", "sync_regs_mask", "user_memory2",
            "vcpus_recommended", "vcpus_max", "max_memslots", "system",
        ] {
            #expect(caps[key] != nil, "capabilities lacks \(key)")
        }
        #expect(caps["api_version"] as? Int == 12)
        let backends = try #require(object["backends"] as? [[String: Any]])
        #expect(backends.compactMap { $0["name"] as? String } == ["attributes", "alias"])
        let probe = try #require(object["hypercall_probe"] as? [String: Any])
        #expect(
            ["exits_to_userspace", "returns_in_guest", "spins", "faults", "unavailable"].contains(
                probe["outcome"] as? String ?? ""))
    }
}
