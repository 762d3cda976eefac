import Foundation

/// Where each capability-dependent area ran, for the matrix `make check` prints at its end
/// (scripts/capability-matrix.py). A test process appends to the file `MEMGATE_LEDGER` names,
/// one tab-separated line each: context, area, `available`/`missing`/`ran`, detail.
/// Without `MEMGATE_LEDGER` nothing is written.
public enum CapabilityLedger {
    /// The areas whose code path depends on what the host's KVM can do.
    public enum Area: String, CaseIterable, Sendable {
        case attributesBackend = "attributes_backend"
        case guestMemfdStore = "guest_memfd_store"
        case memfdStore = "memfd_store"
        case memoryFaultExit = "memory_fault_exit"
        case hypercallExit = "hypercall_exit"
        case pvPort = "pv_port"
    }

    /// "host", "nested host" (`MEMGATE_LEDGER_CONTEXT`), plus the mask when one is in force.
    static func context(hidden: [String]) -> String {
        let base = ProcessInfo.processInfo.environment["MEMGATE_LEDGER_CONTEXT"] ?? "host"
        return hidden.isEmpty ? base : "\(base) masked (\(hidden.joined(separator: ",")))"
    }

    /// Records that a test exercised `area` here (call after its assertions passed).
    public static func ran(_ area: Area, _ detail: String = "") {
        append([context(hidden: HostCapabilities.current.hidden), area.rawValue, "ran", detail])
    }

    /// What this host offers each area, and why not: written once, when the host is first read.
    static func recordAvailability(_ host: HostCapabilities) {
        let context = context(hidden: host.hidden)
        for area in Area.allCases {
            let reason = missingReason(area, host)
            append([context, area.rawValue, reason == nil ? "available" : "missing", reason ?? ""])
        }
    }

    /// Why the host cannot exercise `area`, or nil when it can. Pure.
    static func missingReason(_ area: Area, _ host: HostCapabilities) -> String? {
        guard let report = host.report else { return host.unavailableReason ?? "no KVM" }
        let hidden = Set(report.capabilities.hidden)
        func hiding(_ names: [String]) -> String? {
            let named = names.filter(hidden.contains)
            return named.isEmpty ? nil : "hidden by MEMGATE_KVM_HIDE (\(named.joined(separator: ",")))"
        }
        switch area {
        case .attributesBackend, .memoryFaultExit:
            guard !host.attributesBackend else { return nil }
            return hiding(["guest_memfd", "memory_attributes", "sw_protected", "user_memory2", "memory_fault_info"])
                ?? host.attributesBackendReason
        case .guestMemfdStore:
            return host.mmapGuestMemfd
                ? nil : hiding(["guest_memfd", "guest_memfd_mmap"]) ?? "no mmap-able guest_memfd"
        case .memfdStore:
            return host.mmapGuestMemfd
                ? "the alias backend uses mmap-able guest_memfd here (hide guest_memfd to run this)" : nil
        case .hypercallExit:
            guard host.conversionTransport != .vmcall else { return nil }
            return hiding(["exit_hypercall"])
                ?? "no KVM_EXIT_HYPERCALL for MAP_GPA_RANGE: \(report.hypercallProbe.detail)"
        case .pvPort:
            return nil
        }
    }

    private static let lock = NSLock()

    private static func append(_ fields: [String]) {
        guard let path = ProcessInfo.processInfo.environment["MEMGATE_LEDGER"], !path.isEmpty else { return }
        let line =
            fields.map { $0.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ") }
            .joined(separator: "\t") + "\n"
        lock.lock()
        defer { lock.unlock() }
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let file = FileHandle(forWritingAtPath: path) else { return }
        defer { try? file.close() }
        _ = try? file.seekToEnd()
        try? file.write(contentsOf: Data(line.utf8))
    }
}
