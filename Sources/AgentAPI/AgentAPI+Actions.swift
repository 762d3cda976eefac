import AgentHost
import APITypes
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

/// Each typed action carried out against the AgentHost or the store's readers.
extension AgentAPI {
    func perform(_ action: AgentAction, request: HTTPRequest, principal: Principal?,
                         context: RequestContext) throws(APIError) -> HTTPResponse {
        switch action {
        case .health:
            return HTTPResponse(status: 200, contentType: "application/json", body: Self.healthBody)
        case .metrics:
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4", body: Array(renderMetrics().utf8))
        case .host:
            return try json(snapshot.info(vms: vmCounts(), policy: host.policies.policy))
        case .listVMs:
            return try json(VMList(vms: host.vms.map(VMView.info)))
        case .createVM(let body):
            let vm = try createVM(body)
            return try json(VMView.info(vm), status: 201, headers: [("Location", APIRoute.vm.path(vm.id))])
        case .getVM(let id):
            return try json(VMView.info(try existing(id)))
        case .startVM(let id):
            try hostCall { () throws(AgentHostError) in try host.start(id) }
            return try json(VMView.info(try existing(id)))
        case .pauseVM(let id):
            try hostCall { () throws(AgentHostError) in try host.pause(id) }
            return try json(VMView.info(try existing(id)))
        case .resumeVM(let id):
            try hostCall { () throws(AgentHostError) in try host.resume(id) }
            return try json(VMView.info(try existing(id)))
        case .stopVM(let id):
            try hostCall { () throws(AgentHostError) in try host.stop(id, reason: "stopped through the API by \(Self.client(principal, context))") }
            return try json(VMView.info(try existing(id)))
        case .deleteVM(let id):
            try hostCall { () throws(AgentHostError) in try host.delete(id) }
            return HTTPResponse(status: 204)
        case .console(let id, let after):
            let vm = try existing(id)
            let chunk = vm.runtime.console(from: after)
            return try json(ConsoleChunk(vmId: id, offset: chunk.start, nextOffset: chunk.start + chunk.bytes.count,
                                         droppedBytes: chunk.dropped, data: String(decoding: chunk.bytes, as: UTF8.self)))
        case .memory(let id):
            return try json(VMView.memory(try existing(id)))
        case .pastMemory(let id, let at):
            return try json(try pastMemory(id, at: at))
        case .memorySVG(let id, let from, let to, let at):
            if let at {
                let memory = try pastMemory(id, at: at)
                let name = host.vm(id)?.name ?? "VM \(id)"
                let moment = switch at { case .event(let event): "after event \(event)"; case .time(let time): "at \(utcSeconds(time))" }
                let svg = MemoryMapSVG().render(memory, name: "\(name) \(moment)", drawnAt: Self.utcNow(), from: from, to: to)
                return HTTPResponse(status: 200, contentType: "image/svg+xml", body: Array(svg.utf8))
            }
            let vm = try existing(id)
            let svg = MemoryMapSVG().render(VMView.memory(vm), name: vm.name, drawnAt: Self.utcNow(), from: from, to: to)
            return HTTPResponse(status: 200, contentType: "image/svg+xml", body: Array(svg.utf8))
        case .historySVG(let id):
            let now = MonotonicClock.wallNanos()
            let history = try read { (queries: EventQueries) throws(EventStoreError) in
                try queries.vmHistory(id, columns: HistorySVG.plotWidth, nowNanos: now)
            }
            guard let history else { throw .notFound("no VM with id \(id) in this agent's store") }
            let svg = HistorySVG.render(HistorySVG.Input(
                vmID: id, name: history.name, startNanos: history.createdNanos, endNanos: history.endedNanos ?? now,
                dataRAMBytes: history.dataRAMBytes, initialSharedBytes: history.initialSharedBytes,
                columns: history.columns.map { HistorySVG.Column(index: $0.index, sharedDelta: $0.sharedDelta, applied: $0.applied, denied: $0.denied) },
                drawnAt: Self.utcNow()))
            return HTTPResponse(status: 200, contentType: "image/svg+xml", body: Array(svg.utf8), headers: [("Cache-Control", "no-store")])
        case .faults(let filter):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in try queries.faultPageJSON(filter) }
            return HTTPResponse(status: 200, contentType: "application/json", body: page.json)
        case .conversions(let filter):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in try queries.conversionPageJSON(filter) }
            return HTTPResponse(status: 200, contentType: "application/json", body: page.json)
        case .events(_, _, fromEnd: true):
            let position = try read { (queries: EventQueries) throws(EventStoreError) in try queries.streamHead() }
            return try json(EventPage(events: [], nextAfter: position))
        case .events(let after, let limit, fromEnd: false):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in try queries.eventPageJSON(after: after, limit: limit) }
            return HTTPResponse(status: 200, contentType: "application/json", body: page)
        case .eventStream(let after, let filter):
            guard let streams else {
                throw APIError(409, "not_recording", "this agent runs with --no-record; there are no stored events to stream")
            }
            var start = after ?? 0
            if after == nil { start = try read { (queries: EventQueries) throws(EventStoreError) in try queries.streamHead() } }
            let opener = EventStreamHub.Opener(name: Self.client(principal, context), isAdmin: principal?.role == .admin)
            switch streams.open(after: start, filter: filter, by: opener) {
            case .success(let response): return response
            case .failure(let refusal): throw APIError(503, "too_many_streams", refusal.message, headers: ["Retry-After": "5"])
            }
        case .getPolicy:
            let current = host.policies.policy
            return HTTPResponse(status: 200, contentType: "application/json", body: current.document,
                                headers: [("ETag", ETag.quoted(current.version))])
        case .putPolicy(let document, let ifMatch, let channel):
            let change: PolicyChange
            do throws(PolicyChange.ChannelError) {
                change = try .api(principal: Self.client(principal, context), channel: channel, idempotencyKey: request.header("Idempotency-Key"))
            } catch {
                throw APIError(400, "invalid_change_channel", error.description)
            }
            return try putPolicy(document, ifMatch: ifMatch, change: change)
        case .validatePolicy(let document):
            return try json(validate(document))
        case .replayPolicy(let document, let window, let samples):
            return try json(try replay(document, window: window, samples: samples))
        case .policyDocument(let version):
            let document = try read { (queries: EventQueries) throws(EventStoreError) in try queries.policyDocument(version: version) }
            guard let document else { throw .notFound("this agent never applied policy version \(version)") }
            return HTTPResponse(status: 200, contentType: "application/json", body: document,
                                headers: [("ETag", ETag.quoted(version)), ("Cache-Control", "max-age=31536000, immutable")])
        case .auditHead:
            return try json(try read { (queries: EventQueries) throws(EventStoreError) in try queries.auditHead() })
        case .allEvents(let after, let limit):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in try queries.allEventsPageJSON(after: after, limit: limit) }
            return HTTPResponse(status: 200, contentType: "application/json", body: page)
        case .auditRequests(let after, let limit):
            return try json(try read { (queries: EventQueries) throws(EventStoreError) in try queries.apiRequests(after: after, limit: limit) })
        case .policyHistory(let limit):
            let rows = try read { (queries: EventQueries) throws(EventStoreError) in try queries.policyHistory(limit: limit) }
            return try json(PolicyHistory(entries: rows))
        case .statusPage:
            return statusPage(request, context: context)
        case .login(let token):
            return login(token: token, context: context)
        case .logout:
            return logout(request)
        }
    }

    /// A VM's memory at a past moment, from the records (the VM may have ended, or been deleted).
    func pastMemory(_ id: Int64, at moment: MemoryHistory.Moment) throws(APIError) -> VMMemory {
        let answer = try read { (queries: EventQueries) throws(EventStoreError) in try queries.pastMemory(vm: id, at: moment) }
        switch answer {
        case .success(let past):
            let states = past.map
            var memory = VMMemory(vmId: id, bootRegion: MemoryRun(start: 0, end: states.bounds.start, state: "boot"),
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
            throw APIError(410, "pruned", "the records this moment depends on were pruned (events up to \(through) are gone); ask for a later moment")
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
            guard let kind = BackendKind(rawValue: backend) else { throw .invalidField("backend", "must be alias or attributes") }
            spec.backend = kind
        }
        if let initial = body.initialState {
            guard let state = PageState(rawValue: initial) else { throw .invalidField("initial_state", "must be private or shared") }
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
                throw APIError(412, "precondition_failed", "the policy in force is \(current), not \(expected); GET it again and retry",
                               headers: ["ETag": ETag.quoted(current)])
            case .store(let message):
                throw APIError(503, "store_unavailable", "the policy was not applied: \(message)")
            }
        }
        return try json(PolicyApplied(version: policy.version, changed: changed), headers: [("ETag", ETag.quoted(policy.version))])
    }

    func validate(_ document: [UInt8]) -> PolicyValidation {
        let current = host.policies.policy.version
        do {
            let policy = try VersionedPolicy(document: document)
            return PolicyValidation(valid: true, version: policy.version, changed: policy.version != current, currentVersion: current)
        } catch {
            return PolicyValidation(valid: false, version: nil, changed: false, currentVersion: current,
                                    field: error.field, message: error.message)
        }
    }

    func replay(_ document: [UInt8], window: EventQueries.ReplayWindow, samples: Int) throws(APIError) -> PolicyReplayReport {
        let candidate: VersionedPolicy
        do {
            candidate = try VersionedPolicy(document: document)
        } catch {
            throw .invalidField(error.field, error.message)
        }
        var replay = PolicyReplay(candidate: candidate.policy, sampleLimit: samples)
        let (unrecorded, pruned) = try read { (queries: EventQueries) throws(EventStoreError) in try queries.replay(&replay, window: window) }
        func word(_ allowed: Bool) -> String { allowed ? "allowed" : "denied" }
        let transitions = [true, false].flatMap { was in
            [true, false].map { now in
                PolicyReplayReport.Transition(from: word(was), to: word(now), count: replay.transitions[was]?[now] ?? 0)
            }
        }
        return PolicyReplayReport(
            candidateVersion: candidate.version, currentVersion: host.policies.policy.version, sinceNs: window.since,
            untilNs: window.until, vmId: window.vm, requests: replay.requests, changed: replay.changed, transitions: transitions,
            byRule: replay.byRule.sorted { $0.key < $1.key }.map { .init(source: $0.key, allowed: $0.value.allowed, denied: $0.value.denied) },
            byVm: replay.byVM.sorted { $0.key < $1.key }.map {
                .init(vmId: $0.key, name: $0.value.name, requests: $0.value.requests, allowedToDenied: $0.value.allowedToDenied,
                      deniedToAllowed: $0.value.deniedToAllowed)
            },
            samples: replay.samples.map { difference in
                let request = difference.request
                return .init(eventId: request.eventID, vmId: request.vmID, requestedNs: request.requestedNanos, gpa: request.range.start,
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
