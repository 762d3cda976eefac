import Foundation
import TestSupport
import Testing

/// MEMGATE_KVM_HIDE through the agent's commands: `caps` shows it, `run` and `serve` choose as a
/// host without those capabilities would, and an unknown name is a usage error.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct CapabilityMaskCLITests {
    static let allNames = [
        "guest_memfd", "guest_memfd_mmap", "memory_attributes", "sw_protected", "memory_fault_info",
        "user_memory2", "pre_fault_memory", "exit_hypercall", "sync_regs",
    ]

    func agent(_ arguments: [String], hide: String) throws -> TestSupport.ProcessResult {
        try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"), arguments, environment: ["MEMGATE_KVM_HIDE": hide])
    }

    @Test(arguments: [["caps"], ["run", "--no-record", TestSupport.guestPath("hello")]])
    func anUnknownNameIsAUsageError(_ arguments: [String]) throws {
        let result = try agent(arguments, hide: "guest_memfd,bogus")
        #expect(result.status == 2, "\(result.stderr)")
        #expect(
            result.stderr.contains(
                "MEMGATE_KVM_HIDE names unknown capability 'bogus'; known: guest_memfd, guest_memfd_mmap"))
        #expect(result.stdout.isEmpty, "nothing ran")
    }

    @Test func capsShowsWhatIsHiddenAndAnswersWithoutIt() throws {
        let result = try agent(["caps", "--json"], hide: "sync_regs, guest_memfd,exit_hypercall")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let caps = try #require(report["capabilities"] as? [String: Any])
        #expect(caps["hidden"] as? [String] == ["guest_memfd", "exit_hypercall", "sync_regs"])
        #expect(caps["guest_memfd"] as? Bool == false && caps["guest_memfd_flags"] as? Int == 0)
        #expect(caps["sync_regs_mask"] as? Int == 0 && caps["exit_hypercall_mask"] as? Int == 0)
        #expect(report["conversion_transport"] as? String == "port")
        let backends = report["backends"] as? [[String: Any]] ?? []
        #expect(backends.first { $0["name"] as? String == "attributes" }?["usable"] as? Bool == false)
        let alias = backends.first { $0["name"] as? String == "alias" }?["reason"] as? String ?? ""
        #expect(
            alias.hasPrefix("private pages in memfd")
                && alias.contains("MEMGATE_KVM_HIDE=guest_memfd,exit_hypercall,sync_regs"), "\(alias)")

        let text = try agent(["caps"], hide: "sync_regs")
        #expect(text.stdout.contains("hidden                 sync_regs (MEMGATE_KVM_HIDE)"), "\(text.stdout)")
        let plain = try agent(["caps"], hide: "")
        #expect(plain.stdout.contains("hidden                 nothing"))
    }

    @Test func hidingTheStrongestCapabilityMovesToTheNext() throws {
        let strongest = try agent(["caps", "--strongest"], hide: "").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        #expect(Self.allNames.contains(strongest) || strongest == "none", "\(strongest)")
        guard strongest != "none" else { return }
        let next = try agent(["caps", "--strongest"], hide: strongest).stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        #expect(next != strongest && (Self.allNames.contains(next) || next == "none"), "\(strongest) then \(next)")
        let everything = try agent(["caps", "--strongest"], hide: Self.allNames.joined(separator: ","))
        #expect(everything.stdout == "none\n")
    }

    @Test func runChoosesAsAHostWithoutThemWould() throws {
        let hideAll = Self.allNames.joined(separator: ",")
        let alias = try agent(
            ["run", "--no-record", TestSupport.guestPath("explicit"), "--arg", "0:1:0"], hide: hideAll)
        #expect(alias.status == 0 && alias.stdout == "r0=0\n", "\(alias.stderr)")
        let attributes = try agent(
            ["run", "--no-record", TestSupport.guestPath("hello"), "--backend", "attributes"], hide: "memory_attributes"
        )
        #expect(attributes.status == 2)
        #expect(
            attributes.stderr.contains("the attributes backend is not usable on this host")
                && attributes.stderr.contains("MEMGATE_KVM_HIDE=memory_attributes"),
            "\(attributes.stderr)")
    }

    @Test func serveReportsTheMaskAndRunsVMsWithoutThem() throws {
        let agent = try AgentProcess(environment: ["MEMGATE_KVM_HIDE": Self.allNames.joined(separator: ",")])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let host = AgentProcess.object(try agent.request("GET", "/v1/host"))
        #expect(host["hidden_capabilities"] as? [String] == Self.allNames)
        let capabilities = host["capabilities"] as? [String: Any] ?? [:]
        #expect(
            capabilities["GUEST_MEMFD"] as? Int == 0 && capabilities["SYNC_REGS"] as? Int == 0
                && capabilities["EXIT_HYPERCALL"] as? Int == 0)
        #expect(host["conversion_transport"] as? String == "port")
        let created = try agent.request(
            "POST", "/v1/vms",
            json: #"{"name":"masked","image":"explicit.elf","command_line":"0:4:0 0:2:10","memory_mib":32}"#)
        #expect(created.status == 201, "\(created.text)")
        let id = AgentProcess.object(created)["id"] as? Int ?? 0
        let ended = try agent.waitForEnd(id, seconds: 120)
        #expect(ended["exit_status"] as? Int == 0 && ended["backend"] as? String == "alias", "\(ended)")
        let unmasked = try AgentProcess(environment: ["MEMGATE_KVM_HIDE": ""])  // whatever mask this test run has
        defer {
            unmasked.terminate()
            unmasked.removeFiles()
        }
        #expect(
            AgentProcess.object(try unmasked.request("GET", "/v1/host"))["hidden_capabilities"] == nil,
            "absent when nothing is hidden")
    }
}
