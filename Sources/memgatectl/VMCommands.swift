import APITypes
import ArgumentParser
import Controller
import Foundation

/// `HOST` arguments: a host by inventory name or URL.
func oneHost(_ client: FleetClient, _ name: String) throws -> Int {
    guard let index = client.index(of: name) else {
        throw CtlFailure.usage("no host named \(name) among \(client.hosts.map(\.name).joined(separator: ", "))")
    }
    return index
}

/// Prints one host's VM answer and exits 1 if it failed.
func report(_ outcome: HostOutcome<VMInfo>, json: Bool) throws {
    switch outcome.result {
    case .success(let vm):
        if json { return try Out.json(HostTagged(host: outcome.host.name, row: vm)) }
        Out.line("\(outcome.host.name): VM \(vm.id) \(vm.name) is \(vm.state)\(vm.reason.map { " (\($0))" } ?? "")")
    case .failure(let failure):
        if json { try Out.json(["failures": [HostFailureRow(host: outcome.host.name, kind: failure.kind, error: "\(failure)")]]) }
        throw CtlFailure.failed("\(outcome.host.name): \(failure)")
    }
}

struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Create, start, pause, resume, stop or delete a VM on one host.",
        subcommands: [Create.self, Action.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a VM (started unless --no-start).")
        @OptionGroup var fleet: FleetOptions
        @Argument(help: "The host, by name or URL.") var host: String
        @Option(help: "The VM's name.") var name: String
        @Option(help: "Image path relative to the agent's --images-dir.") var image: String
        @Option(help: "Guest RAM in MiB (even, 2-65536).") var memoryMib: UInt64 = 64
        @Option(help: "vCPUs (1-64).") var vcpus: Int = 1
        @Option(help: "Command line for the guest.") var commandLine: String?
        @Option(help: "A label key=value (repeatable).") var label: [String] = []
        @Option(help: "alias or attributes.") var backend: String?
        @Option(help: "private or shared.") var initialState: String?
        @Flag(help: "Create without starting.") var noStart = false

        func validate() throws {
            guard memoryMib >= 2, memoryMib <= 65536, memoryMib % 2 == 0 else { throw ValidationError("--memory-mib must be even, from 2 to 65536") }
            guard (1...64).contains(vcpus) else { throw ValidationError("--vcpus must be from 1 to 64") }
            for item in label where !item.contains("=") { throw ValidationError("--label takes key=value, not \(item)") }
        }

        func run() throws {
            let client = try fleet.fleet()
            let index = try oneHost(client, host)
            var labels: [String: String] = [:]
            for item in label {
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                labels[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            let request = VMCreateRequest(name: name, image: image, memoryMib: memoryMib, vcpus: vcpus, commandLine: commandLine,
                                          labels: labels.isEmpty ? nil : labels, backend: backend, initialState: initialState,
                                          start: !noStart)
            let body = [UInt8](try APIJSON.encoder().encode(request))
            let outcome = client.send("POST", { _ in "/v1/vms" }, to: [index], body: body).map { FleetClient.decode($0, as: VMInfo.self) }
            try report(outcome[0], json: fleet.json)
        }
    }

    struct Action: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "do", abstract: "start | pause | resume | stop | delete a VM: memgatectl vm do stop HOST ID",
            aliases: [])
        @OptionGroup var fleet: FleetOptions
        @Argument(help: "start, pause, resume, stop or delete.") var action: String
        @Argument(help: "The host, by name or URL.") var host: String
        @Argument(help: "The VM id.") var id: Int64

        func validate() throws {
            guard ["start", "pause", "resume", "stop", "delete"].contains(action) else {
                throw ValidationError("the action must be start, pause, resume, stop or delete")
            }
            guard id >= 1 else { throw ValidationError("the VM id must be a positive integer") }
        }

        func run() throws {
            let client = try fleet.fleet()
            let index = try oneHost(client, host)
            if action == "delete" {
                let outcome = client.send("DELETE", { _ in "/v1/vms/\(id)" }, to: [index])[0]
                if let failure = outcome.failure {
                    throw CtlFailure.failed("\(outcome.host.name): \(failure)")
                }
                return fleet.json ? try Out.json(["host": outcome.host.name, "deleted": "\(id)"]) : Out.line("\(outcome.host.name): VM \(id) deleted")
            }
            let outcome = client.send("POST", { _ in "/v1/vms/\(id)/\(action)" }, to: [index]).map { FleetClient.decode($0, as: VMInfo.self) }
            try report(outcome[0], json: fleet.json)
        }
    }
}

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory", abstract: "Draw a VM's memory map: private and shared runs to scale.")
    @OptionGroup var fleet: FleetOptions
    @Argument(help: "The host, by name or URL.") var host: String
    @Argument(help: "The VM id.") var id: Int64
    @Option(help: "Bar width in cells (8-400).") var width: Int = 64
    @Option(help: "Also write the agent's SVG picture of the map (GET /v1/vms/{id}/memory.svg) to this file.") var svg: String?

    func validate() throws {
        guard (8...400).contains(width) else { throw ValidationError("--width must be from 8 to 400") }
        guard id >= 1 else { throw ValidationError("the VM id must be a positive integer") }
        if let svg, svg.isEmpty { throw ValidationError("--svg needs a file name") }
    }

    func run() throws {
        let client = try fleet.fleet()
        let index = try oneHost(client, host)
        if let svg {
            let picture = client.send("GET", { _ in "/v1/vms/\(id)/memory.svg" }, to: [index])[0]
            switch picture.result {
            case .success(let response):
                do {
                    try Data(response.body).write(to: URL(fileURLWithPath: svg))
                } catch {
                    throw CtlFailure.failed("cannot write \(svg): \(error.localizedDescription)")
                }
            case .failure(let failure):
                throw CtlFailure.failed("\(picture.host.name): \(failure)")
            }
        }
        let outcome = client.get("/v1/vms/\(id)/memory", as: VMMemory.self, on: [index])[0]
        switch outcome.result {
        case .success(let memory):
            if fleet.json { return try Out.json(HostTagged(host: outcome.host.name, row: memory)) }
            Out.line(MemoryBar.render(memory, host: outcome.host.name, width: width))
        case .failure(let failure):
            throw CtlFailure.failed("\(outcome.host.name): \(failure)")
        }
    }
}
