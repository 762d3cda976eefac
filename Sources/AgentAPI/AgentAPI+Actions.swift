import APITypes
import AgentHost
import EventStore
import Foundation
import HTTPServer
import JSON
import Logging
import MemoryModel
import Pictures
import Platform
import Synchronization
import VMM

/// Each typed action carried out against the AgentHost or the store's readers: `perform` hands it
/// to its resource's performer (`Actions/`, one file each), and the helpers they share.
extension AgentAPI {
    func perform(
        _ action: AgentAction, request: HTTPRequest, principal: Principal?,
        context: RequestContext
    ) throws(APIError) -> HTTPResponse {
        switch action.resource {
        case .pages: try performPage(action, request: request, principal: principal, context: context)
        case .vms: try performVM(action, request: request, principal: principal, context: context)
        case .events: try performEvents(action, request: request, principal: principal, context: context)
        case .policy: try performPolicy(action, request: request, principal: principal, context: context)
        case .audit: try performAudit(action, request: request, principal: principal, context: context)
        }
    }

    /// An action handed to a performer that is not its own: `AgentAction.resource` and the performers disagree (a bug, said as one).
    static func misrouted(_ action: AgentAction) -> APIError {
        APIError(500, "internal", "no performer for \(action)")
    }

    /// A VM's memory at a past moment, from the records (the VM may have ended, or been deleted).
    func pastMemory(_ id: Int64, at moment: MemoryHistory.Moment) throws(APIError) -> VMMemory {
        let answer = try read { (queries: EventQueries) throws(EventStoreError) in
            try queries.pastMemory(vm: id, at: moment)
        }
        switch answer {
        case .success(let past):
            let states = past.map
            var memory = VMMemory(
                vmId: id, bootRegion: MemoryRun(start: 0, end: states.bounds.start, state: "boot"),
                dataRamStart: states.bounds.start, dataRamEnd: states.bounds.end, privateBytes: states.privateBytes,
                sharedBytes: states.sharedBytes,
                runs: states.runs.map { MemoryRun(start: $0.range.start, end: $0.range.end, state: $0.state.rawValue) })
            memory.throughEventId = past.throughEventID
            switch moment {
            case .event(let event): memory.atEventId = event
            case .time(let time): memory.atNs = time
            }
            return memory
        case .failure(.noVM):
            throw .notFound("no VM with id \(id) in this agent's store")
        case .failure(.pruned(let through)):
            throw APIError(
                410, "pruned",
                "the records this moment depends on were pruned (events up to \(through) are gone); ask for a later moment"
            )
        }
    }

    func existing(_ id: Int64) throws(APIError) -> ManagedVM {
        guard let vm = host.vm(id) else { throw .notFound("no VM with id \(id) on this agent") }
        return vm
    }

    func createVM(_ body: VMCreateRequest) throws(APIError) -> ManagedVM {
        guard let images = configuration.images else {
            throw APIError(409, "no_images_dir", "this agent was started without --images-dir; it cannot launch images")
        }
        var spec = VMSpec(name: body.name, imageName: body.image, image: [])
        spec.memoryMib = body.memoryMib ?? 64
        spec.vcpus = body.vcpus ?? 1
        spec.commandLine = body.commandLine ?? ""
        spec.labels = body.labels ?? [:]
        if let backend = body.backend {
            guard let kind = BackendKind(rawValue: backend) else {
                throw .invalidField("backend", "must be alias or attributes")
            }
            spec.backend = kind
        }
        if let initial = body.initialState {
            guard let state = PageState(rawValue: initial) else {
                throw .invalidField("initial_state", "must be private or shared")
            }
            spec.initialState = state
        }
        guard spec.commandLine.utf8.count <= 200 else {
            throw .invalidField("command_line", "must be at most 200 bytes")
        }
        do {
            try spec.validate()
        } catch {
            throw Self.map(error)
        }
        spec.image = try images.load(body.image)
        var created: ManagedVM?
        try hostCall { () throws(AgentHostError) in created = try host.create(spec, start: body.start ?? true) }
        guard let created else { throw APIError(500, "internal", "VM creation returned nothing") }
        return created
    }

    func putPolicy(_ document: [UInt8], ifMatch: String, change: PolicyChange) throws(APIError) -> HTTPResponse {
        let policy: VersionedPolicy
        do {
            policy = try VersionedPolicy(document: document)
        } catch {
            throw .invalidField(error.field, error.message)
        }
        let expected = ETag.version(ifMatch)
        let changed: Bool
        do throws(AgentHost.PolicyReplaceError) {
            changed = try host.replacePolicy(policy, expected: expected == "*" ? nil : expected, change: change)
        } catch {
            switch error {
            case .versionMismatch(let current):
                throw APIError(
                    412, "precondition_failed",
                    "the policy in force is \(current), not \(expected); GET it again and retry",
                    headers: ["ETag": ETag.quoted(current)])
            case .store(let message):
                throw APIError(503, "store_unavailable", "the policy was not applied: \(message)")
            }
        }
        return try json(
            PolicyApplied(version: policy.version, changed: changed), headers: [("ETag", ETag.quoted(policy.version))])
    }

    func validate(_ document: [UInt8]) -> PolicyValidation {
        let current = host.policies.policy.version
        do {
            let policy = try VersionedPolicy(document: document)
            return PolicyValidation(
                valid: true, version: policy.version, changed: policy.version != current, currentVersion: current)
        } catch {
            return PolicyValidation(
                valid: false, version: nil, changed: false, currentVersion: current,
                field: error.field, message: error.message)
        }
    }

    func replay(_ document: [UInt8], window: EventQueries.ReplayWindow, samples: Int) throws(APIError)
        -> PolicyReplayReport
    {
        let candidate: VersionedPolicy
        do {
            candidate = try VersionedPolicy(document: document)
        } catch {
            throw .invalidField(error.field, error.message)
        }
        var replay = PolicyReplay(candidate: candidate.policy, sampleLimit: samples)
        let (unrecorded, pruned) = try read { (queries: EventQueries) throws(EventStoreError) in
            try queries.replay(&replay, window: window)
        }
        func word(_ allowed: Bool) -> String { allowed ? "allowed" : "denied" }
        let transitions = [true, false].flatMap { was in
            [true, false].map { now in
                PolicyReplayReport.Transition(from: word(was), to: word(now), count: replay.transitions[was]?[now] ?? 0)
            }
        }
        return PolicyReplayReport(
            candidateVersion: candidate.version, currentVersion: host.policies.policy.version, sinceNs: window.since,
            untilNs: window.until, vmId: window.vm, requests: replay.requests, changed: replay.changed,
            transitions: transitions,
            byRule: replay.byRule.sorted { $0.key < $1.key }.map {
                .init(source: $0.key, allowed: $0.value.allowed, denied: $0.value.denied)
            },
            byVm: replay.byVM.sorted { $0.key < $1.key }.map {
                .init(
                    vmId: $0.key, name: $0.value.name, requests: $0.value.requests,
                    allowedToDenied: $0.value.allowedToDenied,
                    deniedToAllowed: $0.value.deniedToAllowed)
            },
            samples: replay.samples.map { difference in
                let request = difference.request
                return .init(
                    eventId: request.eventID, vmId: request.vmID, requestedNs: request.requestedNanos,
                    gpa: request.range.start,
                    size: request.range.size, direction: request.direction.rawValue, trigger: request.trigger.rawValue,
                    recorded: .init(decision: request.decision.rawValue, reason: request.reason),
                    candidate: .init(decision: word(!difference.wasAllowed), reason: difference.newReason))
            },
            skipped: Dictionary(uniqueKeysWithValues: replay.skipped.map { ($0.key.rawValue, $0.value) }),
            unrecordedDenials: unrecorded, historyPruned: pruned)
    }

    func vmCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for vm in host.vms { counts[vm.lifecycle.state.rawValue, default: 0] += 1 }
        return counts
    }

}
