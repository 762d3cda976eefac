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

/// Where failures become API errors and values become response bodies.
extension AgentAPI {
    func read<T>(_ body: (EventQueries) throws(EventStoreError) -> T) throws(APIError) -> T {
        guard let queries else {
            throw APIError(409, "not_recording", "this agent runs with --no-record; there are no stored events")
        }
        do {
            return try body(queries)
        } catch {
            logger.error("store query failed", metadata: ["error": "\(error)"])
            throw APIError(503, "store_unavailable", "\(error)")
        }
    }

    func hostCall(_ body: () throws(AgentHostError) -> Void) throws(APIError) {
        do { try body() } catch { throw Self.map(error) }
    }

    /// AgentHost errors as API errors: the one mapping.
    static func map(_ error: AgentHostError) -> APIError {
        switch error {
        case .invalid(let field, let message): .invalidField(field, message)
        case .badImage(let message): .invalidField("image", message)
        case .creationFailed(let message): APIError(422, "vm_creation_failed", message)
        case .notFound(let id): .notFound("no VM with id \(id) on this agent")
        case .conflict(let message): APIError(409, "conflict", message)
        case .store(let error): APIError(503, "store_unavailable", error.description)
        case .shuttingDown: APIError(503, "shutting_down", error.description)
        case .tooManyVMs: APIError(409, "too_many_vms", error.description)
        case .nameTaken: APIError(409, "name_taken", error.description)
        }
    }

    /// Pages of events, the hot path: written directly, not through JSONEncoder.
    func json<T: Encodable & JSONWritable>(
        _ value: T, status: Int = 200,
        headers: [(name: String, value: String)] = []
    ) throws(APIError) -> HTTPResponse {
        var writer = JSONWriter(capacity: 4096)
        value.write(to: &writer)
        return HTTPResponse(
            status: status, contentType: "application/json", body: writer.bytes + [0x0A], headers: headers)
    }

    func json<T: Encodable>(_ value: T, status: Int = 200, headers: [(name: String, value: String)] = [])
        throws(APIError) -> HTTPResponse
    {
        do {
            var body = try APIJSON.encoder().encode(value)
            body.append(0x0A)
            return HTTPResponse(status: status, contentType: "application/json", body: body, headers: headers)
        } catch {
            throw APIError(500, "internal", "cannot encode the response: \(error)")
        }
    }
}
