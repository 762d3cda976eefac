import Testing

@testable import MemoryModel

@Suite struct ConversionRequestTests {
    let dataRAM = PageRange(start: 0x20_0000, end: 0x1000_0000)
    let ramSize: UInt64 = 0x1000_0000

    func validate(_ gpa: UInt64, _ pages: UInt64, _ attributes: UInt64) -> Result<ConversionRequest, RequestRejection> {
        MapGPARangeCall(gpa: gpa, pageCount: pages, attributes: attributes).validate(
            dataRAM: dataRAM, ramSize: ramSize, vcpu: 1)
    }

    @Test func validRequestsDecodeDirection() throws {
        let toPrivate = try validate(0x30_0000, 2, 1 << 4).get()
        #expect(
            toPrivate
                == ConversionRequest(
                    range: PageRange(start: 0x30_0000, size: 8192), direction: .toPrivate, trigger: .explicit, vcpu: 1))
        #expect(try validate(0x30_0000, 512, 1).get().direction == .toShared)  // 2M hint, to shared
        #expect(try validate(0xFFF_F000, 1, 2).get().range.end == ramSize)
    }

    @Test(arguments: [
        (UInt64(0x30_0001), UInt64(1), UInt64(0), "not page aligned"),
        (0x30_0000, 0, 0, "npages is 0"),
        (0xFFFF_FFFF_FFFF_F000, 2, 0, "overflows"),
        (0x30_0000, UInt64.max, 0, "overflows"),
        (0x30_0000, 1, 1 << 5, "reserved attribute bits"),
        (0x30_0000, 1, 1 << 63, "reserved attribute bits"),
        (0x30_0000, 1, 3, "page-size field 3"),
        (0xFFF_F000, 2, 0, "outside guest RAM"),
        (0x1_0000_0000, 1, 0, "outside guest RAM"),
        (0x1F_F000, 2, 0, "boot region"),
        (0x0, 1, 0x10, "boot region"),
    ])
    func invalidRequestsGetEINVAL(gpa: UInt64, pages: UInt64, attributes: UInt64, reason: String) {
        guard case .failure(let rejection) = validate(gpa, pages, attributes) else {
            Issue.record(
                "accepted gpa 0x\(String(gpa, radix: 16)) pages \(pages) attrs 0x\(String(attributes, radix: 16))")
            return
        }
        #expect(rejection.code == .invalid)
        #expect(rejection.code.raxValue == UInt64(bitPattern: -22))
        #expect(rejection.reason.contains(reason), "\(rejection.reason)")
    }
}

@Suite struct RecordingBudgetTests {
    @Test func withinTheBudgetEveryEventHasItsRowBeyondItOneCountPerSecond() {
        var budget = RecordingBudget(rowsPerSecond: 3)
        let second: UInt64 = 1_700_000_000_000_000_000
        var admissions: [RecordingBudget.Admission] = []
        for i in 0..<10 {
            admissions.append(budget.admit(.invalid, vmID: 7, wallNanos: second + UInt64(i), monotonicNanos: UInt64(i)))
        }
        #expect(admissions.prefix(3).allSatisfy { $0 == .record })
        #expect(admissions.dropFirst(3).allSatisfy { $0 == .counted(flushed: nil) })
        // Other kinds have their own budget.
        #expect(budget.admit(.fault, vmID: 7, wallNanos: second, monotonicNanos: 10) == .record)
        // The next second's first counted event hands over the finished second.
        let next = budget.admit(.invalid, vmID: 7, wallNanos: second + 1_000_000_000, monotonicNanos: 20)
        #expect(
            next
                == .counted(flushed: EventAggregate(vmID: 7, second: second / 1_000_000_000, kind: .invalid, events: 7))
        )
        #expect(
            budget.drain(vmID: 7) == [
                EventAggregate(vmID: 7, second: second / 1_000_000_000 + 1, kind: .invalid, events: 1)
            ])
        #expect(budget.drain(vmID: 7).isEmpty)
        // The bucket refills with time.
        #expect(
            budget.admit(.invalid, vmID: 7, wallNanos: second + 5_000_000_000, monotonicNanos: 5_000_000_000) == .record
        )
    }

    @Test func theInMemorySinkIsBounded() {
        let sink = InMemoryEventSink(capacity: 100)
        for i in 0..<1000 {
            _ = sink.record(
                fault: MemoryFaultRecord(
                    vmID: 1, vm: "m", vcpu: 0, timeNanos: UInt64(i), gpa: 0, size: 4096, flags: 0, source: .emulated))
        }
        #expect(sink.events.count <= 100)
        #expect(sink.droppedEvents >= 900)
        #expect(sink.faults.last?.timeNanos == 999)
        // A pending conversion whose row was let go finishes without a trap.
        let pending = sink.begin(
            conversion: ConversionRecord(
                vmID: 1, vm: "m", vcpu: 0, requestedNanos: 0, completedNanos: nil, gpa: 0, size: 4096,
                direction: .toShared, trigger: .explicit, decision: .pending, reason: "",
                policyVersion: "v", source: .emulated, discardedBytes: 0, guestResult: 0))
        for i in 0..<200 {
            _ = sink.record(
                fault: MemoryFaultRecord(
                    vmID: 1, vm: "m", vcpu: 0, timeNanos: UInt64(i), gpa: 0, size: 4096, flags: 0, source: .emulated))
        }
        sink.finish(
            pending.ticket, decision: .applied, reason: nil, completedNanos: 1, discardedBytes: 0, guestResult: 0)
        #expect(sink.conversions.isEmpty)
    }
}
