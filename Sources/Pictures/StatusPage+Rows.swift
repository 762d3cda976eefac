import APITypes

/// The status page's small pieces: times people read, VM names with ids, and the live
/// table's rows as the page loads them (the script adds rows in the same form).
extension StatusPage {
    /// `12 s ago`, with the UTC time on hover; the page's script keeps the text current.
    static func time(_ nanos: UInt64, now: UInt64) -> String {
        "<time data-ns=\"\(nanos)\" title=\"\(utcTime(nanos)) UTC\">\(relative(nanos, now: now))</time>"
    }

    /// How long before `now`: `just now`, `42 s ago`, `3 min ago`, `5 h ago`, `2 d ago`.
    /// A time after `now` (another clock) reads as `just now`. Mirrored by `ago()` in the script.
    public static func relative(_ nanos: UInt64, now: UInt64) -> String {
        let seconds = now > nanos ? (now - nanos) / 1_000_000_000 : 0
        switch seconds {
        case 0: return "just now"
        case ..<120: return "\(seconds) s ago"
        case ..<7_200: return "\(seconds / 60) min ago"
        case ..<172_800: return "\(seconds / 3_600) h ago"
        default: return "\(seconds / 86_400) d ago"
        }
    }

    /// `quarter (VM 3)`, or `VM 3` for a VM this page does not know.
    static func vmLabel(_ id: Int64, _ names: [Int64: String]) -> String {
        names[id].map { "\(escape($0)) (VM \(id))" } ?? "VM \(id)"
    }

    /// A row of the live table for an event as the page loads: event, time, kind, VM, detail.
    static func liveRow(_ event: EventEntry, names: [Int64: String], now: UInt64) -> String? {
        let cells: (time: UInt64, kind: String, vm: Int64?, detail: String)
        if let c = event.conversion {
            cells = (
                c.requestedNs, "conversion", c.vmId,
                "\(c.direction) \(hex(c.gpa)) \(humanBytes(c.size)): \(c.decision) (\(c.reason))"
            )
        } else if let f = event.memoryFault {
            cells = (f.timeNs, "memory fault", f.vmId, "\(f.access ?? "unknown") \(hex(f.gpa)) (\(f.source))")
        } else if let v = event.vmEvent {
            cells = (v.timeNs, "vm " + v.what, v.vmId, v.reason ?? "")
        } else if let p = event.policyApplication {
            cells = (p.appliedNs, "policy applied", nil, "\(p.name ?? "") \(p.version.prefix(12)) by \(p.appliedBy)")
        } else {
            return nil
        }
        let vm = cells.vm.map { vmLabel($0, names) } ?? ""
        return
            "<tr id=\"event-\(event.eventId)\"><td>\(event.eventId)</td><td>\(time(cells.time, now: now))</td><td>\(escape(cells.kind))</td>"
            + "<td>\(vm)</td><td>\(escape(cells.detail))</td></tr>"
    }
}
