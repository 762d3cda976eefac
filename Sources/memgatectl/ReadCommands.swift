import APITypes
import ArgumentParser
import Controller
import Foundation
import JSON
import MemoryModel
import Platform

struct HostsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hosts",
        abstract:
            "Reachability, version, backend, VM count, policy (hosts off the fleet's version flagged) and latency of every host."
    )
    @Option(help: "The policy version every host should run (a prefix will do); default: the one most hosts run.")
    var expectVersion: String?
    @OptionGroup var fleet: FleetOptions

    struct Row: Codable {
        var host: String
        var url: String
        var reachable: Bool
        var version: String?
        var backend: String?
        var vms: Int?
        var policyVersion: String?
        var policyName: String?
        /// `drift` or `split` (see `policy show`), nil when on the fleet's version.
        var policyDrift: String?
        /// Nil for a host that did not answer.
        var latencyMs: Double?
        var error: String?
    }

    func run() throws {
        let client = try fleet.fleet()
        let outcomes = client.get(APIRoute.host.path(), as: HostInfo.self)
        let drift = PolicyDrift(versions: outcomes.map { $0.value?.policyVersion }, expected: expectVersion)
        let rows = outcomes.enumerated().map { index, outcome in
            let info = outcome.value
            return Row(
                host: outcome.host.name, url: outcome.host.url, reachable: info != nil, version: info?.version,
                backend: info?.backends.first(where: \.usable)?.name, vms: info.map { $0.vms.values.reduce(0, +) },
                policyVersion: info?.policyVersion, policyName: info?.policyName, policyDrift: drift.flag(index),
                latencyMs: info == nil ? nil : (outcome.seconds * 100_000).rounded() / 100,
                error: outcome.failure.map { "\($0.kind): \($0)" })
        }
        if fleet.json {
            try Out.json(["hosts": rows], as: fleet.format)
        } else {
            var table = Table(["HOST", "URL", "STATUS", "VERSION", "BACKEND", "VMS", "POLICY", "LATENCY"])
            let all = fleet.everyRow(hosts: rows.count)
            for row in rows where all || !row.reachable || row.policyDrift != nil {
                let policy = row.policyVersion.map {
                    String($0.prefix(12)) + (row.policyName.map { " (\($0))" } ?? "")
                        + (row.policyDrift.map { " \($0.uppercased())" } ?? "")
                }
                table.add([
                    row.host, row.url,
                    row.reachable ? "ok" : (outcomes.first { $0.host.name == row.host }?.failure?.kind ?? "error"),
                    row.version ?? "-", row.backend ?? "-", row.vms.map(String.init) ?? "-", policy ?? "-",
                    row.latencyMs.map { String(format: "%.1f ms", $0) } ?? "-",
                ])
            }
            if all || !table.rows.isEmpty { Out.line(table.render()) }
            if !all {
                Out.line(
                    Summary.line(
                        rows.map {
                            $0.reachable ? "ok" : ($0.error?.split(separator: ":").first.map(String.init) ?? "error")
                        }))
            }
            Out.failures(outcomes)
        }
        try Out.finish(outcomes)
    }
}

struct VMsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vms", abstract: "Every VM of every host, merged and sorted by creation time.")
    @Option(
        name: [.customShort("l"), .customLong("selector")],
        help:
            "Only VMs whose labels match, as kubectl's: tenant=c, tenant!=c, 'tenant in (a,b)', 'tenant notin (a,b)', canary, '!canary'; comma-separated, all must hold. (--select picks hosts by their labels.)"
    )
    var selector: String?
    @Option(
        help:
            "Only VMs in these states, comma-separated: created, running, paused, stopped, exited, crashed, failed, faulted, lost."
    )
    var state: String?
    @OptionGroup var fleet: FleetOptions

    static let states: Set<String> = [
        "created", "running", "paused", "stopped", "exited", "crashed", "failed", "faulted", "lost",
    ]

    func validate() throws {
        if let selector {
            do throws(LabelSelector.SyntaxError) { _ = try LabelSelector(selector) } catch {
                throw ValidationError(error.description)
            }
        }
        if let state {
            let named = Set(state.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
            guard named.isSubset(of: Self.states) else {
                throw ValidationError(
                    "--state takes a comma-separated list of \(Self.states.sorted().joined(separator: ", ")), not \(state)"
                )
            }
        }
    }

    func run() throws {
        let client = try fleet.fleet()
        let outcomes = client.get(APIRoute.vms.path(), as: VMList.self)
        let labels = try selector.map { text throws in
            do throws(LabelSelector.SyntaxError) { return try LabelSelector(text) } catch {
                throw CtlFailure.usage(error.description)
            }
        }
        let states = state.map { Set($0.split(separator: ",").map(String.init)) }
        let merged = Merge.rows(outcomes.map { $0.map(\.vms) }, by: \.createdNs).filter { _, vm in
            (labels?.matches(vm.labels) ?? true) && (states?.contains(vm.state) ?? true)
        }
        if fleet.json {
            try Out.json(
                Listing(
                    items: merged.map { HostTagged(host: $0.host, row: $0.row) }, failures: Out.failureList(outcomes)),
                as: fleet.format)
        } else if outcomes.contains(where: { $0.failure == nil }) {
            var columns = ["HOST", "ID", "NAME", "STATE", "MEMORY", "PRIVATE", "SHARED", "CREATED", "ENDED"]
            if fleet.wide { columns += ["BACKEND", "VCPUS", "LABELS"] }
            var table = Table(columns)
            for (host, vm) in merged {
                var row = [
                    host, "\(vm.id)", vm.name, vm.state, "\(vm.memoryMib) MiB", humanBytes(vm.privateBytes),
                    humanBytes(vm.sharedBytes),
                    utcTime(vm.createdNs), VMGet.ending(vm, width: fleet.wide ? nil : 40),
                ]
                if fleet.wide {
                    row += [
                        vm.backend, "\(vm.vcpus)",
                        vm.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                    ]
                }
                table.add(row)
            }
            Out.line(table.render())
        }
        if !fleet.json { Out.failures(outcomes) }
        try Out.finish(outcomes)
    }
}

/// Each answering host's VM names by id, for tables that show a name next to an id (one more request per host;
/// a host that does not answer it shows ids alone).
func vmNames(_ client: FleetClient, on hosts: [Int]) -> [String: [Int64: String]] {
    var names: [String: [Int64: String]] = [:]
    for outcome in client.get(APIRoute.vms.path(), as: VMList.self, on: hosts) {
        guard let list = outcome.value else { continue }
        names[outcome.host.name] = Dictionary(
            list.vms.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
    }
    return names
}

/// `3 (tenant-a-2)`: an id with its VM's name when known.
func vmLabel(_ id: Int64, host: String, _ names: [String: [Int64: String]]) -> String {
    names[host]?[id].map { "\(id) (\($0))" } ?? "\(id)"
}

/// The API's event filters, as flags.
/// A page of rows one agent lists: faults or conversions.
protocol PagedRows: Decodable, Sendable {
    associatedtype Row: Sendable
    var items: [Row] { get }
    var nextCursor: String? { get }
}

extension FaultPage: PagedRows {}
extension ConversionPage: PagedRows {}

struct EventFilterOptions: ParsableArguments {
    @OptionGroup var window: WindowOptions
    @Option(
        help: """
            Rows per host in a page (1-1000). The default listing is the oldest matching rows first, merged by time without holes; \
            when more match, it prints a --cursor that continues every host where it stopped.
            """)
    var limit: Int = 100
    @Option(help: "The N newest matching rows instead (1-1000), merged across hosts and listed oldest first.")
    var tail: Int?
    @Option(
        help:
            "Continue a listing: the mgc1.… cursor it printed (each host's place), or with one host its own next_cursor."
    )
    var cursor: String?

    func validate() throws {
        guard PageLimit.range.contains(limit) else { throw ValidationError("--limit must be \(PageLimit.words)") }
        if let tail, !PageLimit.range.contains(tail) { throw ValidationError("--tail must be \(PageLimit.words)") }
        if let cursor, !cursor.hasPrefix(FleetCursor.prefix), !(Int64(cursor).map { $0 >= 0 } ?? false) {
            throw ValidationError(
                "--cursor takes the mgc1.… cursor a listing printed, or one host's next_cursor (a number), not \(cursor)"
            )
        }
        if tail != nil, cursor != nil {
            throw ValidationError("--tail takes the newest rows; it cannot continue a --cursor")
        }
    }

    /// Each host's place to continue from (nil: from the start).
    func start(_ hosts: [String]) throws -> FleetCursor? {
        guard let cursor else { return nil }
        if let number = Int64(cursor) {
            guard hosts.count == 1, let host = hosts.first else {
                throw CtlFailure.usage(
                    "--cursor \(cursor) is one host's place, but this listing asks \(hosts.count) hosts: "
                        + "pass the mgc1.… cursor the listing printed, or name one host")
            }
            return FleetCursor(positions: [host: number])
        }
        do {
            return try FleetCursor(parsing: cursor, hosts: hosts)
        } catch {
            throw CtlFailure.usage("--cursor: \(error.description)")
        }
    }

    func query(_ extra: [(String, String?)] = [], after: Int64?) throws -> String {
        let (since, until) = try window.resolved(now: TimeFlag.nowNanos())
        let pairs: [(String, String?)] =
            [
                ("vm", window.vm.map { "\($0)" }), ("since", since.map { "\($0)" }), ("until", until.map { "\($0)" }),
                ("limit", "\(tail ?? limit)"), ("order", tail == nil ? nil : "newest"),
                ("cursor", after.map { "\($0)" }),
            ] + extra
        return pairs.compactMap { name, value in value.map { "\(name)=\($0)" } }.joined(separator: "&")
    }

    /// One page of `path` from every host, merged by `time`: the newest `--tail` rows, or the
    /// oldest rows after each host's place without holes, with a notice of the cursor that continues.
    func list<Page: PagedRows>(
        _ client: FleetClient, _ path: String, _ extra: [(String, String?)] = [], as page: Page.Type,
        time: (Page.Row) -> UInt64, id: (Page.Row) -> Int64
    )
        throws -> (rows: [(host: String, row: Page.Row)], outcomes: [HostOutcome<Page>], next: FleetCursor?)
    {
        try window.requireOneHost(client.hosts)
        let hosts = client.hosts.map(\.name)
        let start = try start(hosts)
        let queries = try hosts.indices.map { try query(extra, after: start?.positions[hosts[$0]]) }
        let outcomes = client.send("GET", { "\(path)?" + queries[$0] })
            .map { FleetClient.decode($0, as: Page.self) }
        if let tail {
            return (Array(Merge.rows(outcomes.map { $0.map(\.items) }, by: time).suffix(tail)), outcomes, nil)
        }
        let answered = outcomes.compactMap { outcome in
            outcome.value.map {
                FleetPage.HostRows(host: outcome.host.name, rows: $0.items, more: $0.nextCursor != nil)
            }
        }
        var (rows, next) = FleetPage.merge(answered, from: start ?? FleetCursor(positions: [:]), time: time, id: id)
        // A host that failed keeps its place, so the cursor still continues it.
        for host in hosts where next != nil && next?.positions[host] == nil {
            next?.positions[host] = start?.positions[host] ?? 0
        }
        if let next {
            Out.error(
                "more rows match: continue with --cursor \(next.encoded()) (every host's place), "
                    + "or narrow with --since/--until, or see the newest with --tail N")
        }
        return (rows, outcomes, next)
    }
}

struct FaultsCommand: ParsableCommand {
    /// Which side of the VM's memory the guest reached: KVM's PRIVATE flag (MemoryFaultRecord.flagPrivate).
    static func side(_ fault: FaultEvent) -> String {
        fault.flags & MemoryFaultRecord.flagPrivate != 0 ? "private" : "shared"
    }

    static let configuration = CommandConfiguration(
        commandName: "faults", abstract: "Memory faults of every host, merged and sorted by time.")
    @OptionGroup var filter: EventFilterOptions
    @OptionGroup var fleet: FleetOptions

    func run() throws {
        let client = try fleet.fleet()
        let (merged, outcomes, next) = try filter.list(
            client, APIRoute.faults.path(), as: FaultPage.self, time: \.timeNs, id: \.eventId)
        if fleet.json {
            try Out.json(
                Listing(
                    items: merged.map { HostTagged(host: $0.host, row: $0.row) }, failures: Out.failureList(outcomes),
                    nextCursor: next?.encoded()), as: fleet.format)
        } else if outcomes.contains(where: { $0.failure == nil }) {
            // The access (what the guest did) and the page's side (private or shared) are two things, each its own column.
            var table = Table(["TIME (UTC)", "HOST", "VM", "VCPU", "GPA", "SIZE", "ACCESS", "PAGE", "SOURCE", "EVENT"])
            let names = vmNames(client, on: outcomes.indices.filter { outcomes[$0].failure == nil })
            for (host, fault) in merged {
                table.add([
                    utcTime(fault.timeNs), host, vmLabel(fault.vmId, host: host, names), "\(fault.vcpu)",
                    "0x" + String(fault.gpa, radix: 16),
                    humanBytes(fault.size), fault.access ?? "unknown", Self.side(fault), fault.source,
                    "\(fault.eventId)",
                ])
            }
            Out.line(table.render())
        }
        if !fleet.json { Out.failures(outcomes) }
        try Out.finish(outcomes)
    }
}

struct ConversionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conversions", abstract: "Conversions of every host, merged and sorted by time.")
    @OptionGroup var filter: EventFilterOptions
    @Option(help: "Only this direction.") var direction: ConversionDirection?
    @Option(help: "Only this trigger.") var trigger: ConversionTrigger?
    @Option(help: "Only this decision.") var decision: ConversionDecision?
    @OptionGroup var fleet: FleetOptions

    func run() throws {
        let client = try fleet.fleet()
        let (merged, outcomes, next) = try filter.list(
            client, APIRoute.conversions.path(),
            [("direction", direction?.rawValue), ("trigger", trigger?.rawValue), ("decision", decision?.rawValue)],
            as: ConversionPage.self, time: \.requestedNs, id: \.eventId)
        if fleet.json {
            try Out.json(
                Listing(
                    items: merged.map { HostTagged(host: $0.host, row: $0.row) }, failures: Out.failureList(outcomes),
                    nextCursor: next?.encoded()), as: fleet.format)
        } else if outcomes.contains(where: { $0.failure == nil }) {
            var table = Table(["TIME (UTC)", "HOST", "VM", "GPA", "SIZE", "DIRECTION", "TRIGGER", "DECISION", "REASON"])
            let names = vmNames(client, on: outcomes.indices.filter { outcomes[$0].failure == nil })
            for (host, c) in merged {
                table.add([
                    utcTime(c.requestedNs), host, vmLabel(c.vmId, host: host, names), "0x" + String(c.gpa, radix: 16),
                    humanBytes(c.size), c.direction,
                    c.trigger, c.decision, c.reason,
                ])
            }
            Out.line(table.render())
        }
        if !fleet.json { Out.failures(outcomes) }
        try Out.finish(outcomes)
    }
}

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract:
            "Faults, conversions, VM lifecycle and policy events of every host; --follow streams them as they happen until interrupted."
    )
    @Flag(
        help:
            "Stream events as they happen (GET /v1/events/stream, reconnecting with Last-Event-ID); only from now, unless --from-start, --after or --since-file."
    )
    var follow = false
    @Flag(help: "With --follow: the whole history first, then what comes.") var fromStart = false
    @Option(help: "Start after this event id on every host (default: from the start; with --follow, from now).")
    var after: Int64?
    @Option(
        help:
            "With --follow: a file that keeps each host's last event id; a follower started again resumes there, without loss or repeats."
    )
    var sinceFile: String?
    @Option(
        help:
            "Most events one host may hand out (1-100000000); a host past it fails. Default: 100000 (without --follow)."
    )
    var maxRows: Int?
    @Option(
        help: "Seconds to run at most (0.1-86400: 30, 30s, 5m); then stop (with --follow, cleanly).",
        transform: DurationFlag.seconds)
    var maxDuration: Double?
    @Option(help: "Only the newest N events (1-100000) over every host, oldest first (not with --follow).") var tail:
        Int?
    /// --since and --until read what is recorded (not with --follow); --vm goes with both.
    @OptionGroup var window: WindowOptions
    @Option(
        help:
            "Only these kinds, comma-separated: memory_fault, conversion, vm (every lifecycle kind), vm_created, vm_started, vm_paused, vm_resumed, vm_ended, policy_applied."
    )
    var kind: String?
    @OptionGroup var fleet: FleetOptions

    static let kinds: Set<String> = [
        "memory_fault", "conversion", "vm", "vm_created", "vm_started", "vm_paused", "vm_resumed", "vm_ended",
        "policy_applied",
    ]

    /// The kinds `--kind` names, `vm` spread into every lifecycle kind (nil: all).
    var kindFilter: Set<String>? {
        guard let kind else { return nil }
        var named = Set(kind.split(separator: ",").map(String.init))
        if named.remove("vm") != nil {
            named.formUnion(["vm_created", "vm_started", "vm_paused", "vm_resumed", "vm_ended"])
        }
        return named
    }

    /// Whether `event` passes --vm, --kind, --since and --until.
    func matches(_ event: EventEntry, since: UInt64?, until: UInt64?) -> Bool {
        if let kinds = kindFilter, !kinds.contains(event.kind) { return false }
        if let vm = window.vm, (event.memoryFault?.vmId ?? event.conversion?.vmId ?? event.vmEvent?.vmId) != vm {
            return false
        }
        let time = Self.time(event)
        if let since, time < since { return false }
        if let until, time >= until { return false }
        return true
    }

    func validate() throws {
        if let kind {
            let named = Set(kind.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
            guard !named.isEmpty, named.isSubset(of: Self.kinds) else {
                throw ValidationError(
                    "--kind takes a comma-separated list of \(Self.kinds.sorted().joined(separator: ", ")), not \(kind)"
                )
            }
        }
        if let tail, !(1...100_000).contains(tail) { throw ValidationError("--tail must be from 1 to 100000") }
        if follow, window.since != nil || window.until != nil || tail != nil {
            throw ValidationError(
                "--since, --until and --tail read what is recorded; with --follow use --from-start, --after or --since-file"
            )
        }
        if let after, after < 0 { throw ValidationError("--after must be at least 0") }
        if fromStart, after != nil {
            throw ValidationError("--from-start and --after both say where to start; give one")
        }
        if sinceFile != nil, !follow { throw ValidationError("--since-file goes with --follow") }
        if let maxRows, !(1...100_000_000).contains(maxRows) {
            throw ValidationError("--max-rows must be from 1 to 100000000")
        }
        if let maxDuration, !(0.1...86_400).contains(maxDuration) {
            throw ValidationError("--max-duration must be from 0.1 to 86400 seconds")
        }
    }

    func run() throws {
        if follow { return try followStreams() }
        let client = try fleet.fleet()
        try window.requireOneHost(client.hosts)
        let now = TimeFlag.nowNanos()
        let (since, until) = try window.resolved(now: now)
        let names = fleet.json ? [:] : vmNames(client, on: Array(client.hosts.indices))
        let end = maxDuration.map { Date(timeIntervalSinceNow: $0) }
        // Lifecycle events and policy applications come only with kinds=all: asked for when --kind wants them.
        let all = kindFilter.map { !$0.isSubset(of: ["memory_fault", "conversion"]) } ?? false
        let pull = EventPull(pageSize: 1000, maxRows: maxRows ?? 100_000, allKinds: all)
        let hosts = Array(client.hosts.indices)
        // What is recorded when the command starts: a host whose guests keep converting does not keep it going.
        let heads = EventPull.heads(client, hosts: hosts, end: end)
        var kept: [(host: String, event: EventEntry)] = [], round: [(host: String, event: EventEntry)] = []
        var printFailure: (any Error)?
        let (_, failures) = pull.run(
            client, hosts: hosts, from: Array(repeating: after ?? 0, count: hosts.count), through: heads, end: end,
            take: { batch in
                let host = client.hosts[batch.host].name
                round += batch.events.filter { matches($0, since: since, until: until) }.map { (host: host, event: $0) }
                return EventPull.Taken(position: batch.position)
            },
            roundEnded: {
                // Each round merged over every host by time; with --tail, the newest N kept until every host is read.
                round.sort { Self.time($0.event) < Self.time($1.event) }
                if let tail {
                    kept = Array((kept + round).sorted { Self.time($0.event) < Self.time($1.event) }.suffix(tail))
                } else if printFailure == nil {
                    do {
                        for (host, event) in round { try print(host, event, names: names) }
                    } catch {
                        printFailure = error
                    }
                }
                round = []
            })
        if let printFailure { throw printFailure }
        for index in failures.keys.sorted() { Out.error("\(client.hosts[index].name): \(failures[index] ?? "")") }
        for (host, event) in kept { try print(host, event, names: names) }
        if !failures.isEmpty { throw CtlFailure.hostsFailed }
    }

    /// `--follow`: every host's stream on one multi handle until SIGINT, SIGTERM or --max-duration.
    func followStreams() throws {
        // --vm and --kind are the stream's own filters.
        let query = [window.vm.map { "vm=\($0)" }, kind.map { "kind=\($0)" }].compactMap { $0 }.joined(separator: "&")
        let (hosts, follower) = try fleet.follower(path: APIRoute.eventStream.path(query: query))
        try window.requireOneHost(hosts)
        var positions = try SinceFile.load(sinceFile)
        let start: [Int64?] = hosts.map { host in
            if let after { return after }
            if fromStart { return 0 }
            return positions[host.name]
        }
        // Signals end the follow cleanly: the loop returns, the positions are saved.
        ProcessSignals.blockTermination()
        Thread.detachNewThread {
            _ = ProcessSignals.waitForSignal()
            follower.stop()
        }
        if let maxDuration {
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: maxDuration)
                follower.stop()
            }
        }
        var refused = Set<Int>()
        var lost = Set<Int>()
        var lastSaved = Date()
        let decoder = APIJSON.decoder()
        let final = try follower.follow(startAfter: start) { update in
            switch update {
            case .event(let index, let event):
                let host = hosts[index].name
                switch event.type {
                case "overflow":
                    Out.error("\(host): fell behind the agent's buffer; resuming from event \(event.id ?? 0)")
                case "pruned":
                    Out.error(
                        "\(host): events up to \((event.id).map(String.init) ?? "?") were pruned on the agent; what remains follows"
                    )
                default:
                    if fleet.json {
                        // The event's own JSON with the host in front: no decoding and encoding on the way.
                        var line = JSONWriter(capacity: 64)
                        line.beginObject()
                        line.field("host", host)
                        Out.line(String(decoding: line.bytes, as: UTF8.self) + "," + event.data.dropFirst())
                    } else if let entry = try? decoder.decode(EventEntry.self, from: Data(event.data.utf8)) {
                        try print(host, entry)
                    }
                }
                positions[host] = event.id ?? positions[host]
                if let sinceFile, Date().timeIntervalSince(lastSaved) >= 0.2 {
                    try SinceFile.save(positions, to: sinceFile)
                    lastSaved = Date()
                }
            case .connected(let index):
                // Said only after a loss: the first connection of each host is the normal start.
                if lost.remove(index) != nil {
                    Out.error(
                        "\(hosts[index].name): reconnected; resuming after event \(positions[hosts[index].name].map(String.init) ?? "the start")"
                    )
                }
            case .disconnected(let index, let reason, let retryIn):
                if retryIn != nil { lost.insert(index) }
                if let retryIn {
                    Out.error("\(hosts[index].name): \(reason); reconnecting in \(String(format: "%.1f", retryIn)) s")
                } else {
                    Out.error("\(hosts[index].name): \(reason); not following this host")
                    refused.insert(index)
                }
            }
        }
        for (index, host) in hosts.enumerated() { positions[host.name] = final[index] ?? positions[host.name] }
        if let sinceFile { try SinceFile.save(positions, to: sinceFile) }
        if !refused.isEmpty { throw CtlFailure.hostsFailed }
    }

    static func time(_ event: EventEntry) -> UInt64 {
        event.memoryFault?.timeNs ?? event.conversion?.requestedNs ?? event.vmEvent?.timeNs ?? event.policyApplication?
            .appliedNs ?? 0
    }

    /// One event a line; `names` (host → VM id → name) puts the VM's name next to its id where known.
    func print(_ host: String, _ event: EventEntry, names: [String: [Int64: String]] = [:]) throws {
        if fleet.json { return try Out.jsonLine(HostTagged(host: host, row: event), as: fleet.format) }
        if let fault = event.memoryFault {
            Out.line(
                "\(utcTime(fault.timeNs))  \(host)  vm \(vmLabel(fault.vmId, host: host, names))  memory fault at 0x\(String(fault.gpa, radix: 16)) (\(FaultsCommand.side(fault)) \(fault.access ?? "unknown"), \(fault.source))"
            )
        } else if let c = event.conversion {
            Out.line(
                "\(utcTime(c.requestedNs))  \(host)  vm \(vmLabel(c.vmId, host: host, names))  \(c.trigger) \(c.direction) 0x\(String(c.gpa, radix: 16)) +\(humanBytes(c.size)): \(c.decision) (\(c.reason))"
            )
        } else if let v = event.vmEvent {
            let end = v.finalState.map { " \($0)" + (v.reason.map { ": \($0)" } ?? "") } ?? ""
            Out.line("\(utcTime(v.timeNs))  \(host)  vm \(v.vmId)  \(v.what) (\(v.vmName))\(end)")
        } else if let p = event.policyApplication {
            Out.line(
                "\(utcTime(p.appliedNs))  \(host)  policy \(p.version.prefix(12))\(p.name.map { " (\($0))" } ?? "") applied by \(p.appliedBy)"
            )
        }
    }
}
