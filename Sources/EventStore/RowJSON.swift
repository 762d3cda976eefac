import JSON
import SQLite

/// Renders result rows straight into API JSON (the shape of `APITypes.ConversionEvent`
/// and `FaultEvent`, pinned to their Codable form by `RowJSONContractTests`), copying
/// text from SQLite's buffers without intermediate Strings. The hot path of
/// `GET /v1/conversions` and `/v1/memory-faults`.
extension JSONWriter {
    /// A text column as a string field.
    mutating func field<Row: SQLRow>(_ name: StaticString, text column: Int32, of row: Row) {
        row.withText(column) { field(name, utf8: $0) }
    }

    /// One conversion row (columns in `EventQueries.conversionColumns` order).
    mutating func conversion<Row: SQLRow>(_ row: Row) {
        beginObject()
        field("changed_bytes", row.unsigned(13))
        if !row.isNull(4) { field("completed_ns", row.unsigned(4)) }
        field("decision", text: 9, of: row)
        field("direction", text: 7, of: row)
        field("discarded_bytes", row.unsigned(14))
        field("event_id", row.int64(0))
        field("gpa", row.unsigned(5))
        field("guest_result", row.int64(15))
        field("policy_version", text: 11, of: row)
        field("reason", text: 10, of: row)
        field("requested_ns", row.unsigned(3))
        if !row.isNull(16) { field("requested_pages", row.unsigned(16)) }
        field("size", row.unsigned(6))
        field("source", text: 12, of: row)
        field("trigger", text: 8, of: row)
        field("vcpu", row.int64(2))
        field("vm_id", row.int64(1))
        endObject()
    }

    /// One memory-fault row (columns in `EventQueries.faultColumns` order).
    mutating func fault<Row: SQLRow>(_ row: Row) {
        beginObject()
        if row.isNull(8) { field("access", "unknown") } else { field("access", text: 8, of: row) }
        field("event_id", row.int64(0))
        field("flags", row.unsigned(6))
        field("gpa", row.unsigned(4))
        field("size", row.unsigned(5))
        field("source", text: 7, of: row)
        field("time_ns", row.unsigned(3))
        field("vcpu", row.int64(2))
        field("vm_id", row.int64(1))
        endObject()
    }
}
