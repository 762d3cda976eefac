import APITypes
import ArgumentParser
import Controller

/// A VM as an operator names it: its id (a positive integer) or its name (unique among an agent's VMs not deleted).
enum VMReference: ExpressibleByArgument, CustomStringConvertible, Equatable {
    case id(Int64)
    case name(String)

    init?(argument: String) {
        if let id = Int64(argument) {
            guard id >= 1 else { return nil }
            self = .id(id)
        } else {
            guard !argument.isEmpty, argument.utf8.count <= 128, !argument.hasPrefix("-") else { return nil }
            self = .name(argument)
        }
    }

    var description: String {
        switch self {
        case .id(let id): "\(id)"
        case .name(let name): name
        }
    }

    /// The VM's id on host `index`: a name is looked up in its list; none, or (from an older agent) several, is an error.
    func resolve(_ client: FleetClient, _ index: Int) throws -> Int64 {
        guard case .name(let name) = self else {
            if case .id(let id) = self { return id }
            return 0
        }
        let listing = client.get(APIRoute.vms.path(), as: VMList.self, on: [index])[0]
        guard let list = listing.value else {
            throw CtlFailure.failed("\(listing.host.name): \(listing.failure.map { "\($0)" } ?? "no answer")")
        }
        let matches = list.vms.filter { $0.name == name }
        switch matches.count {
        case 1: return matches[0].id
        case 0:
            throw CtlFailure.failed(
                "\(listing.host.name): no VM named \(name) (give its id, or see `memgatectl vms --hosts \(listing.host.name)`)"
            )
        default:
            throw CtlFailure.failed(
                "\(listing.host.name): \(matches.count) VMs are named \(name) (ids \(matches.map { "\($0.id)" }.joined(separator: ", "))); give the id"
            )
        }
    }
}
