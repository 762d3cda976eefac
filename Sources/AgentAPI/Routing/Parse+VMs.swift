import APITypes
import EventStore
import HTTPServer
import MemoryModel

extension APIRouter {
    /// The VMs and everything under /v1/vms/{id}.
    static func parseVM(_ route: APIRoute, _ parts: Parts) throws(APIError) -> AgentAction {
        switch (route, parts.method) {
        case (.vms, "GET"): return .listVMs
        case (.vms, _): return .createVM(try decodeCreate(parts.request))
        case (.vm, "GET"): return .getVM(try parts.vm())
        case (.vm, _): return .deleteVM(try parts.vm())
        case (.vmStart, _): return .startVM(try parts.vm())
        case (.vmPause, _): return .pauseVM(try parts.vm())
        case (.vmResume, _): return .resumeVM(try parts.vm())
        case (.vmStop, _): return .stopVM(try parts.vm())
        case (.console, _):
            return .console(try parts.vm(), after: Int(try parts.query.integer("after", in: 0...Int64.max, default: 0)))
        case (.memory, _):
            if let at = try moment(parts.query) { return .pastMemory(try parts.vm(), at: at) }
            return .memory(try parts.vm())
        case (.memorySVG, _):
            let from = try parts.query.optionalAddress("from", in: 0...Int64.max).map { UInt64($0) }
            let to = try parts.query.optionalAddress("to", in: 1...Int64.max).map { UInt64($0) }
            if let from, let to, to <= from { throw APIError(422, "invalid_range", "to must be above from") }
            return .memorySVG(try parts.vm(), from: from, to: to, at: try moment(parts.query))
        case (.historySVG, _): return .historySVG(try parts.vm())
        default: throw .notFound("no such endpoint: \(parts.request.path)")
        }
    }
}
