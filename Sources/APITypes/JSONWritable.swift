import JSON

// The small answers a fleet push asks every host for, written without JSONEncoder.
// (Pages of events are rendered straight from SQLite rows by the event store.)

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
