import Foundation
import TestSupport
import Testing

/// Issue 31 (part): contexts kept by memgatectl itself, and completions that know the fleet, through the real binary.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ContextsAndCompletionTests {
    func memgatectl(_ arguments: [String], _ environment: [String: String?]) throws -> TestSupport.ProcessResult {
        var isolated: [String: String?] = [
            "MEMGATE_CONFIG": nil, "HOME": "/nonexistent-memgate-home", "MEMGATE_HOSTS": nil, "MEMGATE_TOKEN": nil,
        ]
        for (name, value) in environment { isolated[name] = value }
        return try TestSupport.run(try TestSupport.binaryPath("memgatectl"), arguments, environment: isolated)
    }

    /// What bash completes for the words (the last one being typed), with the script memgatectl prints.
    func bashCompletions(_ words: [String], _ environment: [String: String?]) throws -> [String] {
        let binary = try TestSupport.binaryPath("memgatectl")
        let quoted = ([binary] + words).map { "'\($0)'" }.joined(separator: " ")
        let script = """
            source <('\(binary)' completion bash)
            COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count); COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
            _memgatectl memgatectl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        var isolated: [String: String?] = [
            "MEMGATE_CONFIG": nil, "HOME": "/nonexistent-memgate-home", "MEMGATE_HOSTS": nil, "MEMGATE_TOKEN": nil,
        ]
        for (name, value) in environment { isolated[name] = value }
        let result = try TestSupport.run("/bin/bash", ["-c", script], environment: isolated)
        return result.stdout.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    @Test func contextsAreKeptAndUsedAndCompletionsKnowTheFleet() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        #expect(
            try agent.request(
                "POST", "/v1/vms",
                json: #"{"name":"tenant-a-2","image":"churn.elf","command_line":"5","memory_mib":16}"#
            ).status == 201)
        let hosts = try hostsFile(["\(agent.url) host-a", "http://127.0.0.1:9 host-b"])
        let token = agent.directory.appendingPathComponent("ctl-token").path
        try Data(AgentProcess.adminToken.utf8).write(to: URL(fileURLWithPath: token))
        let config = agent.directory.appendingPathComponent("config/memgate.json").path
        let environment: [String: String?] = ["MEMGATE_CONFIG": config]

        // set-context creates the file (0600), use-context and current-context follow it.
        let set = try memgatectl(
            ["config", "set-context", "lab", "--hosts", hosts, "--token-file", token, "--select", "x=y"], environment)
        #expect(set.status == 0, "\(set.stderr)")
        #expect(
            try memgatectl(
                ["config", "set-context", "prod", "--hosts", hosts, "--token-file", token, "--use"], environment
            ).status == 0)
        let mode = (try FileManager.default.attributesOfItem(atPath: config)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        #expect(try memgatectl(["config", "current-context"], environment).stdout == "prod\n")
        let listed = try memgatectl(["config", "get-contexts"], environment)
        #expect(
            listed.stdout.contains("*") && listed.stdout.contains("lab") && listed.stdout.contains("x=y"),
            "\(listed.stdout)")
        #expect(try memgatectl(["config", "use-context", "nosuch"], environment).status == 2)
        #expect(
            try memgatectl(["config", "use-context", "lab"], environment).stdout.contains("switched to context lab"))
        #expect(try memgatectl(["config", "current-context"], environment).stdout == "lab\n")
        // A command with neither hosts nor token on its command line uses the context (prod has no selector).
        let vms = try memgatectl(["vms", "--context", "prod", "--host", agent.url, "-o", "name"], environment)
        #expect(vms.status == 0 && vms.stdout.contains("tenant-a-2"), "\(vms.stdout) \(vms.stderr)")
        // --help says where contexts, -o and completions are.
        let help = try memgatectl(["--help"], environment).stdout
        #expect(
            help.contains("MEMGATE_CONFIG") && help.contains("use-context") && help.contains("-o table")
                && help.contains("completion bash"), "\(help)")

        // Completions: subcommands, inventory hosts, contexts, -o values, vm do actions, and a host's VM names.
        #expect(try memgatectl(["completion", "zsh"], environment).stdout.contains("#compdef memgatectl"))
        #expect(try memgatectl(["completion", "powershell"], environment).status == 2)
        #expect(try bashCompletions(["con"], environment).contains("config"))
        #expect(try bashCompletions(["vm", "get", "host-"], environment) == ["host-a", "host-b"])
        #expect(try bashCompletions(["config", "use-context", ""], environment).sorted() == ["lab", "prod"])
        #expect(try bashCompletions(["vms", "-o", "y"], environment) == ["yaml"])
        #expect(try bashCompletions(["vm", "do", "st"], environment).sorted() == ["start", "stop"])
        #expect(try bashCompletions(["vm", "get", "host-a", "ten"], environment) == ["tenant-a-2"])
    }
}
