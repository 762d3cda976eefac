import APITypes
import AgentHost
import EventStore
import Foundation
import HTTPServer
import MemoryModel
import Pictures
import Platform

extension AgentAPI {
    /// The VMs: create, read, start, pause, resume, stop, delete; console, memory and its pictures.
    func performVM(
        _ action: AgentAction, request: HTTPRequest, principal: Principal?,
        context: RequestContext
    ) throws(APIError) -> HTTPResponse {
        switch action {
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
            try hostCall { () throws(AgentHostError) in
                try host.stop(id, reason: "stopped through the API by \(Self.client(principal, context))")
            }
            return try json(VMView.info(try existing(id)))
        case .deleteVM(let id):
            try hostCall { () throws(AgentHostError) in try host.delete(id) }
            return HTTPResponse(status: 204)
        case .console(let id, let after):
            let vm = try existing(id)
            let chunk = vm.runtime.console(from: after)
            return try json(
                ConsoleChunk(
                    vmId: id, offset: chunk.start, nextOffset: chunk.start + chunk.bytes.count,
                    droppedBytes: chunk.dropped, data: String(decoding: chunk.bytes, as: UTF8.self)))
        case .memory(let id):
            return try json(VMView.memory(try existing(id)))
        case .pastMemory(let id, let at):
            return try json(try pastMemory(id, at: at))
        case .memorySVG(let id, let from, let to, let at):
            if let at {
                let memory = try pastMemory(id, at: at)
                let name = host.vm(id)?.name ?? "VM \(id)"
                let moment =
                    switch at {
                    case .event(let event): "after event \(event)"
                    case .time(let time): "at \(utcSeconds(time))"
                    }
                let svg = MemoryMapSVG().render(
                    memory, name: "\(name) \(moment)", drawnAt: Self.utcNow(), from: from, to: to)
                return HTTPResponse(status: 200, contentType: "image/svg+xml", body: Array(svg.utf8))
            }
            let vm = try existing(id)
            let svg = MemoryMapSVG().render(
                VMView.memory(vm), name: vm.name, drawnAt: Self.utcNow(), from: from, to: to)
            return HTTPResponse(status: 200, contentType: "image/svg+xml", body: Array(svg.utf8))
        case .historySVG(let id):
            let now = MonotonicClock.wallNanos()
            let history = try read { (queries: EventQueries) throws(EventStoreError) in
                try queries.vmHistory(id, columns: HistorySVG.plotWidth, nowNanos: now)
            }
            guard let history else { throw .notFound("no VM with id \(id) in this agent's store") }
            let svg = HistorySVG.render(
                HistorySVG.Input(
                    vmID: id, name: history.name, startNanos: history.createdNanos, endNanos: history.endedNanos ?? now,
                    dataRAMBytes: history.dataRAMBytes, initialSharedBytes: history.initialSharedBytes,
                    columns: history.columns.map {
                        HistorySVG.Column(
                            index: $0.index, sharedDelta: $0.sharedDelta, applied: $0.applied, denied: $0.denied)
                    },
                    drawnAt: Self.utcNow()))
            return HTTPResponse(
                status: 200, contentType: "image/svg+xml", body: Array(svg.utf8),
                headers: [("Cache-Control", "no-store")])
        default:
            throw Self.misrouted(action)
        }
    }
}
