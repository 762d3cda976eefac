import MemoryModel

/// How a VM process says its guest ended: the last record of its ring.
public struct VMEnding: Sendable, Equatable {
    /// stopped, crashed, failed or faulted.
    public var state: String
    public var reason: String?
    public var exitStatus: Int32?
    /// The final page-state runs: start, end, state.
    public var runs: [(start: UInt64, end: UInt64, state: PageState)]
    /// The VM's last statistics (`VMStatisticsWire` JSON), so the agent's totals never go down.
    public var statistics: [UInt8]
    /// The end of the console, and the console's total byte count.
    public var consoleTail: [UInt8]
    public var consoleBytes: Int

    public init(
        state: String, reason: String?, exitStatus: Int32?, runs: [(start: UInt64, end: UInt64, state: PageState)],
        statistics: [UInt8], consoleTail: [UInt8], consoleBytes: Int
    ) {
        self.state = state
        self.reason = reason
        self.exitStatus = exitStatus
        self.runs = runs
        self.statistics = statistics
        self.consoleTail = consoleTail
        self.consoleBytes = consoleBytes
    }

    public static func == (a: VMEnding, b: VMEnding) -> Bool {
        a.state == b.state && a.reason == b.reason && a.exitStatus == b.exitStatus && a.statistics == b.statistics
            && a.consoleTail == b.consoleTail && a.consoleBytes == b.consoleBytes && a.runs.count == b.runs.count
            && zip(a.runs, b.runs).allSatisfy { $0.start == $1.start && $0.end == $1.end && $0.state == $1.state }
    }
}

/// What a VM process writes into its ring. Conversions are numbered by the VM
/// process (`sequence`): the agent gives each its event id when it commits it, so
/// ids follow commit order across every VM. Pure, with its codec.
public enum VMRecord: Sendable, Equatable {
    case fault(MemoryFaultRecord)
    /// A conversion already final (denied, invalid).
    case conversion(ConversionRecord)
    /// An allowed conversion, pending until its `finish`.
    case begin(sequence: UInt64, ConversionRecord)
    case finish(
        sequence: UInt64, decision: ConversionDecision, reason: String?, completedNanos: UInt64, discardedBytes: UInt64,
        guestResult: Int64)
    case aggregate(EventAggregate)
    /// Started, paused or resumed: in the ring, so it keeps its place among the VM's records.
    case lifecycle(EventStore.VMEventKind, timeNanos: UInt64)
    case ended(VMEnding)

    /// A conversion begun and finished within one drain becomes one `begin` already final: the
    /// same row in the store, half the work (most conversions finish within a round). Pure.
    public static func coalesced(_ records: [VMRecord]) -> [VMRecord] {
        var out: [VMRecord] = []
        out.reserveCapacity(records.count)
        var begun: [UInt64: Int] = [:]
        for record in records {
            switch record {
            case .begin(let sequence, _):
                begun[sequence] = out.count
                out.append(record)
            case .finish(let sequence, let decision, let reason, let completed, let discarded, let result):
                guard let index = begun.removeValue(forKey: sequence), case .begin(_, var conversion) = out[index]
                else {
                    out.append(record)
                    continue
                }
                conversion.decision = decision
                if let reason { conversion.reason = reason }
                conversion.completedNanos = completed
                conversion.discardedBytes = discarded
                conversion.guestResult = result
                out[index] = .begin(sequence: sequence, conversion)
            default:
                out.append(record)
            }
        }
        return out
    }

    private enum Tag: UInt8 { case fault = 1, conversion, begin, finish, aggregate, ended, lifecycle }

    public func encoded() -> [UInt8] {
        var out = ByteWriter()
        switch self {
        case .fault(let fault):
            out.bytes.append(Tag.fault.rawValue)
            out.integer(fault.vcpu)
            out.integer(fault.timeNanos)
            out.integer(fault.gpa)
            out.integer(fault.size)
            out.integer(fault.flags)
            out.text(fault.source.rawValue)
            out.text(fault.access?.rawValue ?? "")
        case .conversion(let record):
            out.bytes.append(Tag.conversion.rawValue)
            Self.write(record, to: &out)
        case .begin(let sequence, let record):
            out.bytes.append(Tag.begin.rawValue)
            out.integer(sequence)
            Self.write(record, to: &out)
        case .finish(let sequence, let decision, let reason, let completed, let discarded, let result):
            out.bytes.append(Tag.finish.rawValue)
            out.integer(sequence)
            out.text(decision.rawValue)
            out.bytes.append(reason == nil ? 0 : 1)
            out.text(reason ?? "")
            out.integer(completed)
            out.integer(discarded)
            out.integer(result)
        case .aggregate(let aggregate):
            out.bytes.append(Tag.aggregate.rawValue)
            out.integer(aggregate.second)
            out.text(aggregate.kind.rawValue)
            out.integer(aggregate.events)
        case .lifecycle(let what, let time):
            out.bytes.append(Tag.lifecycle.rawValue)
            out.text(what.rawValue)
            out.integer(time)
        case .ended(let ending):
            out.bytes.append(Tag.ended.rawValue)
            out.text(ending.state)
            out.bytes.append(ending.reason == nil ? 0 : 1)
            out.text(ending.reason ?? "")
            out.bytes.append(ending.exitStatus == nil ? 0 : 1)
            out.integer(ending.exitStatus ?? 0)
            out.integer(UInt32(truncatingIfNeeded: ending.runs.count))
            for run in ending.runs {
                out.integer(run.start)
                out.integer(run.end)
                out.bytes.append(run.state == .shared ? 1 : 0)
            }
            out.data(ending.statistics)
            out.data(ending.consoleTail)
            out.integer(UInt64(max(ending.consoleBytes, 0)))
        }
        return out.bytes
    }

    private static func write(_ record: ConversionRecord, to out: inout ByteWriter) {
        out.integer(record.vcpu)
        out.integer(record.requestedNanos)
        out.optional(record.completedNanos)
        out.integer(record.gpa)
        out.integer(record.size)
        out.text(record.direction.rawValue)
        out.text(record.trigger.rawValue)
        out.text(record.decision.rawValue)
        out.text(record.reason)
        out.text(record.policyVersion)
        out.text(record.source.rawValue)
        out.integer(record.changedBytes)
        out.integer(record.discardedBytes)
        out.integer(record.guestResult)
        out.optional(record.requestedPages)
    }

    /// nil when the bytes are not one whole record. `vmID` and `name` fill what the ring does not repeat.
    public static func decode(_ bytes: [UInt8], vmID: Int64, name: String) -> VMRecord? {
        var reader = ByteReader(bytes)
        guard let tag = reader.byte().flatMap(Tag.init(rawValue:)) else { return nil }
        let record: VMRecord?
        switch tag {
        case .fault:
            guard let vcpu = reader.integer(UInt32.self), let time = reader.integer(UInt64.self),
                let gpa = reader.integer(UInt64.self),
                let size = reader.integer(UInt64.self), let flags = reader.integer(UInt64.self),
                let source = reader.value(EventSource.self), let access = reader.text()
            else { return nil }
            guard access.isEmpty || FaultAccess(rawValue: access) != nil else { return nil }
            record = .fault(
                MemoryFaultRecord(
                    vmID: vmID, vm: name, vcpu: vcpu, timeNanos: time, gpa: gpa, size: size, flags: flags,
                    source: source, access: FaultAccess(rawValue: access)))
        case .conversion:
            record = readConversion(&reader, vmID: vmID, name: name).map(VMRecord.conversion)
        case .begin:
            guard let sequence = reader.integer(UInt64.self),
                let conversion = readConversion(&reader, vmID: vmID, name: name)
            else { return nil }
            record = .begin(sequence: sequence, conversion)
        case .finish:
            guard let sequence = reader.integer(UInt64.self), let decision = reader.value(ConversionDecision.self),
                let hasReason = reader.byte(), let reason = reader.text(), let completed = reader.integer(UInt64.self),
                let discarded = reader.integer(UInt64.self), let result = reader.integer(Int64.self)
            else { return nil }
            record = .finish(
                sequence: sequence, decision: decision, reason: hasReason == 1 ? reason : nil,
                completedNanos: completed,
                discardedBytes: discarded, guestResult: result)
        case .aggregate:
            guard let second = reader.integer(UInt64.self), let kind = reader.value(AggregateKind.self),
                let events = reader.integer(UInt64.self)
            else { return nil }
            record = .aggregate(EventAggregate(vmID: vmID, second: second, kind: kind, events: events))
        case .lifecycle:
            guard let what = reader.value(EventStore.VMEventKind.self), [.started, .paused, .resumed].contains(what),
                let time = reader.integer(UInt64.self)
            else { return nil }
            record = .lifecycle(what, timeNanos: time)
        case .ended:
            guard let state = reader.text(), let hasReason = reader.byte(), let reason = reader.text(),
                let hasStatus = reader.byte(),
                let status = reader.integer(Int32.self), let count = reader.integer(UInt32.self), count <= 1 << 22
            else { return nil }
            var runs: [(start: UInt64, end: UInt64, state: PageState)] = []
            for _ in 0..<count {
                guard let start = reader.integer(UInt64.self), let end = reader.integer(UInt64.self),
                    let shared = reader.byte()
                else { return nil }
                runs.append((start, end, shared == 1 ? .shared : .private))
            }
            guard let statistics = reader.data(), let tail = reader.data(),
                let consoleBytes = reader.integer(UInt64.self)
            else { return nil }
            record = .ended(
                VMEnding(
                    state: state, reason: hasReason == 1 ? reason : nil, exitStatus: hasStatus == 1 ? status : nil,
                    runs: runs, statistics: statistics, consoleTail: tail,
                    consoleBytes: Int(min(consoleBytes, UInt64(Int.max)))))
        }
        return reader.atEnd ? record : nil
    }

    private static func readConversion(_ reader: inout ByteReader, vmID: Int64, name: String) -> ConversionRecord? {
        guard let vcpu = reader.integer(UInt32.self), let requested = reader.integer(UInt64.self),
            let completed = reader.optional(),
            let gpa = reader.integer(UInt64.self), let size = reader.integer(UInt64.self),
            let direction = reader.value(ConversionDirection.self), let trigger = reader.value(ConversionTrigger.self),
            let decision = reader.value(ConversionDecision.self), let reason = reader.text(),
            let policy = reader.text(),
            let source = reader.value(EventSource.self), let changed = reader.integer(UInt64.self),
            let discarded = reader.integer(UInt64.self), let result = reader.integer(Int64.self),
            let pages = reader.optional()
        else { return nil }
        var record = ConversionRecord(
            vmID: vmID, vm: name, vcpu: vcpu, requestedNanos: requested, completedNanos: completed, gpa: gpa,
            size: size, direction: direction, trigger: trigger, decision: decision, reason: reason,
            policyVersion: policy, source: source, changedBytes: changed, discardedBytes: discarded,
            guestResult: result)
        record.requestedPages = pages
        return record
    }
}
