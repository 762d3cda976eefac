import JSON

extension FaultEvent: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("event_id", eventId)
        w.field("flags", flags)
        w.field("gpa", gpa)
        w.field("size", size)
        w.field("source", source)
        w.field("time_ns", timeNs)
        w.field("vcpu", vcpu)
        w.field("vm_id", vmId)
        w.endObject()
    }
}

extension ConversionEvent: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("changed_bytes", changedBytes)
        if let completedNs { w.field("completed_ns", completedNs) }
        w.field("decision", decision)
        w.field("direction", direction)
        w.field("discarded_bytes", discardedBytes)
        w.field("event_id", eventId)
        w.field("gpa", gpa)
        w.field("guest_result", guestResult)
        w.field("policy_version", policyVersion)
        w.field("reason", reason)
        w.field("requested_ns", requestedNs)
        if let requestedPages { w.field("requested_pages", requestedPages) }
        w.field("size", size)
        w.field("source", source)
        w.field("trigger", trigger)
        w.field("vcpu", vcpu)
        w.field("vm_id", vmId)
        w.endObject()
    }
}

extension EventEntry: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        if let conversion {
            w.key("conversion")
            conversion.write(to: &w)
        }
        w.field("event_id", eventId)
        w.field("kind", kind)
        if let memoryFault {
            w.key("memory_fault")
            memoryFault.write(to: &w)
        }
        w.endObject()
    }
}

extension EventPage: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.beginArray("events")
        for event in events { event.write(to: &w) }
        w.endArray()
        w.field("next_after", nextAfter)
        w.endObject()
    }
}

extension PolicyValidation: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("changed", changed)
        w.field("current_version", currentVersion)
        if let field { w.field("field", field) }
        if let message { w.field("message", message) }
        w.field("valid", valid)
        if let version { w.field("version", version) }
        w.endObject()
    }
}

extension PolicyApplied: JSONWritable {
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("changed", changed)
        w.field("version", version)
        w.endObject()
    }
}
