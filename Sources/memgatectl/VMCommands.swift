import APITypes
import ArgumentParser
import Controller
import Foundation
import Platform

/// Prints one host's VM answer and exits 1 if it failed.
/// - Parameter check: for a write, the command that shows whether it applied after all (said when its answer timed out).
func report(_ outcome: HostOutcome<VMInfo>, format: OutputFormat, check: String? = nil) throws {
    let json = format.isStructured
    switch outcome.result {
    case .success(let vm):
        if json { return try Out.json(HostTagged(host: outcome.host.name, row: vm), as: format) }
        Out.line(
            "\(outcome.host.name): VM \(vm.id) \(vm.name) is \(vm.state)\(vm.reason.map { " (\($0))" } ?? "")\(vm.exitStatus.map { ", exit status \($0)" } ?? "")"
        )
    case .failure(let failure):
        let hint = outcome.mayHaveApplied ? check.map(uncertain) ?? "" : ""
        if json {
            try Out.json(
                ["failures": [HostFailureRow(host: outcome.host.name, kind: failure.kind, error: "\(failure)\(hint)")]],
                as: format)
        }
        throw CtlFailure.failed("\(outcome.host.name): \(failure)\(hint)")
    }
}

/// What a write whose answer timed out tells the operator: it may still apply, and how to see.
func uncertain(_ check: String) -> String {
    "; the write may still apply (the agent may have received it, and a retry with the same Idempotency-Key is answered once): \(check)"
}

struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Create, show, start, pause, resume, stop or delete a VM on one host, or read its console.",
        subcommands: [Create.self, VMGet.self, VMConsole.self, Action.self, StopAll.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a VM (started unless --no-start).")
        @Argument(
            help: "The host: a name from the inventory, or an agent URL.",
            completion: .custom(CompletionSources.hostNames)) var host: String
        @Option(help: "The VM's name.") var name: String
        @Option(help: "Image path relative to the agent's --images-dir.") var image: String
        @Option(help: "Guest RAM in MiB (even, 4-65536).") var memoryMib: UInt64 = 64
        @Option(help: "vCPUs (1-64).") var vcpus: Int = 1
        @Option(help: "Command line for the guest.") var commandLine: String?
        @Option(help: "A label key=value (repeatable).") var label: [String] = []
        @Option(help: "alias or attributes.") var backend: String?
        @Option(help: "private or shared.") var initialState: String?
        @Flag(help: "Create without starting.") var noStart = false
        @OptionGroup var fleet: FleetOptions

        func validate() throws {
            guard memoryMib >= 4, memoryMib <= 65536, memoryMib % 2 == 0 else {
                throw ValidationError("--memory-mib must be even, from 4 to 65536")
            }
            guard (1...64).contains(vcpus) else { throw ValidationError("--vcpus must be from 1 to 64") }
            for item in label where !item.contains("=") {
                throw ValidationError("--label takes key=value, not \(item)")
            }
        }

        func run() throws {
            let (client, index) = try fleet.oneHost(host)
            var labels: [String: String] = [:]
            for item in label {
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                labels[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            let request = VMCreateRequest(
                name: name, image: image, memoryMib: memoryMib, vcpus: vcpus, commandLine: commandLine,
                labels: labels.isEmpty ? nil : labels, backend: backend, initialState: initialState,
                start: !noStart)
            let body = [UInt8](try APIJSON.encoder().encode(request))
            let outcome = client.send("POST", { _ in APIRoute.vms.path() }, to: [index], body: body).map {
                FleetClient.decode($0, as: VMInfo.self)
            }
            try report(outcome[0], format: fleet.format, check: "check with: memgatectl vm get \(host) \(name)")
        }
    }

    /// Draining a host is explicit: VMs outlive their agent, so this is how an operator ends them all.
    struct StopAll: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract:
                "Stop every VM of a host that has not ended: memgatectl vm stop --all HOST (one VM: vm do stop HOST ID)."
        )
        @Flag(help: "Every VM of the host (required: draining a host is never implicit).") var all = false
        @Argument(
            help: "The host: a name from the inventory, or an agent URL.",
            completion: .custom(CompletionSources.hostNames)) var host: String
        @OptionGroup var fleet: FleetOptions

        func validate() throws {
            guard all else {
                throw ValidationError("give --all to stop every VM of the host (one VM: memgatectl vm do stop HOST ID)")
            }
        }

        func run() throws {
            let (client, index) = try fleet.oneHost(host, bounded: false)
            let listing = client.get(APIRoute.vms.path(), as: VMList.self, on: [index])[0]
            let vms: [VMInfo]
            switch listing.result {
            case .success(let list): vms = list.vms
            case .failure(let failure): throw CtlFailure.failed("\(listing.host.name): \(failure)")
            }
            let live = vms.filter { ["created", "running", "paused"].contains($0.state) }
            var failures: [String] = []
            for vm in live {
                let outcome = client.send("POST", { _ in APIRoute.vmStop.path(vm.id) }, to: [index]).map {
                    FleetClient.decode($0, as: VMInfo.self)
                }[0]
                switch outcome.result {
                case .success(let stopped):
                    Out.line("\(outcome.host.name): VM \(stopped.id) \(stopped.name) is \(stopped.state)")
                case .failure(let failure) where failure.kind == "conflict": continue  // it ended meanwhile
                case .failure(let failure): failures.append("VM \(vm.id): \(failure)")
                }
            }
            if live.isEmpty { Out.line("\(listing.host.name): no VM to stop") }
            guard failures.isEmpty else {
                throw CtlFailure.failed("\(listing.host.name): " + failures.joined(separator: "; "))
            }
        }
    }

    /// What `vm do` does, and the route that does it (delete is `DELETE` on the VM itself).
    enum VMAction: String, CaseIterable, ExpressibleByArgument {
        case start, pause, resume, stop, delete

        var route: APIRoute {
            switch self {
            case .start: .vmStart
            case .pause: .vmPause
            case .resume: .vmResume
            case .stop: .vmStop
            case .delete: .vm
            }
        }
    }

    struct Action: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "do", abstract: "start | pause | resume | stop | delete a VM: memgatectl vm do stop HOST ID",
            aliases: [])
        @Argument(help: "What to do.") var action: VMAction
        @Argument(
            help: "The host: a name from the inventory, or an agent URL.",
            completion: .custom(CompletionSources.hostNames)) var host: String
        @Argument(help: "The VM: its id or its name.", completion: .custom(CompletionSources.vmNames)) var vm:
            VMReference
        @Flag(help: "With delete: stop a running or paused VM first.") var force = false
        @OptionGroup var fleet: FleetOptions

        func validate() throws {
            if force, action != .delete { throw ValidationError("--force goes with delete only") }
        }

        func run() throws {
            let (client, index) = try fleet.oneHost(host)
            let id = try vm.resolve(client, index)
            let check = "check with: memgatectl vm get \(host) \(id)"
            if action == .delete {
                if force {
                    // Stopping a VM that already ended is a conflict, and harmless: the delete decides.
                    let stop = client.send("POST", { _ in APIRoute.vmStop.path(id) }, to: [index])[0]
                    if let failure = stop.failure, failure.kind != "conflict" {
                        throw CtlFailure.failed("\(stop.host.name): \(failure)")
                    }
                }
                let outcome = client.send("DELETE", { _ in APIRoute.vm.path(id) }, to: [index])[0]
                if let failure = outcome.failure {
                    throw CtlFailure.failed(
                        "\(outcome.host.name): \(failure)\(outcome.mayHaveApplied ? uncertain(check) : "")")
                }
                return fleet.json
                    ? try Out.json(["host": outcome.host.name, "deleted": "\(id)"], as: fleet.format)
                    : Out.line("\(outcome.host.name): VM \(id) deleted")
            }
            let outcome = client.send("POST", { _ in action.route.path(id) }, to: [index]).map {
                FleetClient.decode($0, as: VMInfo.self)
            }
            try report(outcome[0], format: fleet.format, check: check)
        }
    }
}

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory", abstract: "Draw a VM's memory map: private and shared runs to scale.")
    @Argument(
        help: "The host: a name from the inventory, or an agent URL.", completion: .custom(CompletionSources.hostNames))
    var host: String
    @Argument(help: "The VM: its id or its name.", completion: .custom(CompletionSources.vmNames)) var vm: VMReference
    @Option(help: "Bar width in cells (8-400).") var width: Int = 64
    @Option(help: "Also write the agent's SVG picture of the map (GET /v1/vms/{id}/memory.svg) to this file.") var svg:
        String?
    @Option(help: "The map at a past moment, from the records: an RFC 3339 time (2026-12-06T14:02:17Z) or an event id.")
    var at: String?
    @Option(help: "Zoom: draw from this guest-physical address (0x400000 or decimal).", transform: GuestAddress.parse)
    var from: UInt64?
    @Option(help: "Zoom: draw up to this address (exclusive; same forms).", transform: GuestAddress.parse) var to:
        UInt64?
    @OptionGroup var fleet: FleetOptions

    /// The `at=` query, checked here so a typo is one local error.
    var moment: String? {
        guard let at else { return nil }
        return "at=" + at.replacingOccurrences(of: "+", with: "%2B")
    }

    func validate() throws {
        guard (8...400).contains(width) else { throw ValidationError("--width must be from 8 to 400") }
        if let at, !(Int64(at).map { $0 >= 1 } ?? false), TimeArgument.rfc3339(at) == nil {
            throw ValidationError(
                "--at takes an RFC 3339 time such as 2026-12-06T14:02:17Z or an event id (a positive integer), not \(at)"
            )
        }
        if let svg, svg.isEmpty { throw ValidationError("--svg needs a file name") }
        if let from, let to, from >= to { throw ValidationError("--from must be below --to") }
    }

    /// The SVG's query: the moment and the zoom, as the API takes them.
    var svgQuery: String {
        let pairs = [
            moment, from.map { "from=0x" + String($0, radix: 16) }, to.map { "to=0x" + String($0, radix: 16) },
        ].compactMap { $0 }
        return pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&")
    }

    func run() throws {
        let (client, index) = try fleet.oneHost(host)
        let id = try vm.resolve(client, index)
        if let svg {
            let picture = client.send("GET", { _ in APIRoute.memorySVG.path(id) + svgQuery }, to: [index])[0]
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
        let outcome = client.get(APIRoute.memory.path(id, query: moment ?? ""), as: VMMemory.self, on: [index])[0]
        switch outcome.result {
        case .success(let memory):
            if fleet.json { return try Out.json(HostTagged(host: outcome.host.name, row: memory), as: fleet.format) }
            Out.line(MemoryBar.render(memory, host: outcome.host.name, width: width, from: from, to: to))
        case .failure(let failure):
            throw CtlFailure.failed("\(outcome.host.name): \(failure)")
        }
    }
}

/// `vm get HOST ID`: one VM whole, with why and how it ended.
struct VMGet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "One VM: state, how it ended (reason, exit status), memory, labels.")
    @Argument(
        help: "The host: a name from the inventory, or an agent URL.", completion: .custom(CompletionSources.hostNames))
    var host: String
    @Argument(help: "The VM: its id or its name.", completion: .custom(CompletionSources.vmNames)) var vm: VMReference
    @OptionGroup var fleet: FleetOptions

    func run() throws {
        let (client, index) = try fleet.oneHost(host)
        let id = try vm.resolve(client, index)
        let outcome = client.get(APIRoute.vm.path(id), as: VMInfo.self, on: [index])[0]
        guard let vm = outcome.value else { return try report(outcome, format: fleet.format) }
        if fleet.json { return try Out.json(HostTagged(host: outcome.host.name, row: vm), as: fleet.format) }
        var table = Table(["FIELD", "VALUE"])
        let rows: [(String, String)] = [
            ("host", outcome.host.name), ("id", "\(vm.id)"), ("name", vm.name), ("state", vm.state),
            ("ended", Self.ending(vm, width: nil)),
            ("image", vm.image), ("memory", "\(vm.memoryMib) MiB, \(vm.vcpus) vCPU, \(vm.backend) backend"),
            ("data RAM", "\(humanBytes(vm.privateBytes)) private, \(humanBytes(vm.sharedBytes)) shared"),
            (
                "conversions",
                vm.conversions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            ),
            ("memory faults", "\(vm.memoryFaults)"), ("console", humanBytes(UInt64(max(vm.consoleBytes, 0)))),
            ("labels", vm.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")),
            ("created", utcTime(vm.createdNs)), ("started", vm.startedNs.map(utcTime) ?? "-"),
            ("ended at", vm.endedNs.map(utcTime) ?? "-"),
        ]
        for (field, value) in rows { table.add([field, value.isEmpty ? "-" : value]) }
        Out.line(table.render())
    }

    /// How a VM ended, in a few words (`-` while it runs); `width` cuts a long reason.
    static func ending(_ vm: VMInfo, width: Int?) -> String {
        var parts: [String] = []
        if let status = vm.exitStatus { parts.append("exit \(status)") }
        if let reason = vm.reason { parts.append(reason) }
        let text = parts.joined(separator: ": ")
        guard !text.isEmpty else { return "-" }
        guard let width, text.count > width else { return text }
        return String(text.prefix(width - 1)) + "…"
    }
}

/// `vm console HOST ID [-f]`: what the guest wrote, and with -f what it writes next.
struct VMConsole: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console", abstract: "Print a VM's console; -f keeps printing until the VM ends.")
    @Argument(
        help: "The host: a name from the inventory, or an agent URL.", completion: .custom(CompletionSources.hostNames))
    var host: String
    @Argument(help: "The VM: its id or its name.", completion: .custom(CompletionSources.vmNames)) var vm: VMReference
    @Flag(name: [.customShort("f"), .long], help: "Keep printing what the guest writes until it ends.") var follow =
        false
    @Option(help: "Seconds between polls with -f (0.05-60: 0.5, 500ms, 2s).", transform: DurationFlag.seconds)
    var interval: Double = 0.5
    @OptionGroup var fleet: FleetOptions

    func validate() throws {
        guard interval >= 0.05, interval <= 60 else {
            throw ValidationError("--interval must be from 0.05 to 60 seconds")
        }
    }

    func run() throws {
        let (client, index) = try fleet.oneHost(host, bounded: !follow)
        let id = try vm.resolve(client, index)
        var after = 0
        while true {
            let outcome = client.get(
                APIRoute.console.path(id, query: "after=\(after)"), as: ConsoleChunk.self, on: [index])[0]
            guard let chunk = outcome.value else {
                throw CtlFailure.failed("\(outcome.host.name): \(outcome.failure.map { "\($0)" } ?? "no answer")")
            }
            if chunk.droppedBytes > 0 {
                Out.error("\(chunk.droppedBytes) bytes of console output were overwritten before they were read")
            }
            if !chunk.data.isEmpty { Out.text(chunk.data) }
            after = chunk.nextOffset
            guard follow else { return }
            if chunk.data.isEmpty {
                // Drained: stop once the VM has ended (its last bytes are already read).
                let vm = client.get(APIRoute.vm.path(id), as: VMInfo.self, on: [index])[0].value
                if let vm, !["created", "running", "paused"].contains(vm.state) {
                    let last = client.get(
                        APIRoute.console.path(id, query: "after=\(after)"), as: ConsoleChunk.self, on: [index])[0].value
                    if let last, !last.data.isEmpty { Out.text(last.data) }
                    return
                }
                Thread.sleep(forTimeInterval: interval)
            }
        }
    }
}
