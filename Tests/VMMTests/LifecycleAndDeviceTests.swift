import KVM
import Testing

@testable import VMM

@Suite struct VMLifecycleTests {
    func lifecycle(after events: [VMTransition]) throws -> VMLifecycle {
        var machine = VMLifecycle()
        for event in events { try machine.apply(event) }
        return machine
    }

    @Test func happyPathThroughPauseAndExit() throws {
        let machine = try lifecycle(after: [.start, .pause, .resume, .pause, .resume, .guestExited(status: 3)])
        #expect(machine.state == .stopped && machine.exitStatus == 3)
    }

    @Test(arguments: [
        (VMTransition.crash(reason: "tf"), VMState.crashed),
        (.fail(reason: "unhandled"), .failed),
        (.stop(reason: "operator"), .stopped),
        (.allVCPUsHalted, .stopped),
        (.guestExited(status: 0), .stopped),
    ])
    func terminalEventsFromRunningAndPaused(event: VMTransition, expected: VMState) throws {
        #expect(try lifecycle(after: [.start, event]).state == expected)
        #expect(try lifecycle(after: [.start, .pause, event]).state == expected)
        #expect(expected.isTerminal)
    }

    @Test func invalidTransitionsAreRejected() throws {
        #expect(throws: LifecycleError(state: .created, event: "pause")) { try lifecycle(after: [.pause]) }
        #expect(throws: LifecycleError(state: .created, event: "resume")) { try lifecycle(after: [.resume]) }
        #expect(throws: LifecycleError(state: .running, event: "start")) { try lifecycle(after: [.start, .start]) }
        #expect(throws: LifecycleError(state: .running, event: "resume")) { try lifecycle(after: [.start, .resume]) }
        #expect(throws: LifecycleError(state: .created, event: "crash")) { try lifecycle(after: [.crash(reason: "x")]) }
        for terminal: [VMTransition] in [
            [.start, .crash(reason: "x")], [.start, .fail(reason: "y")], [.stop(reason: "z")],
        ] {
            for event: VMTransition in [.start, .pause, .resume, .stop(reason: "again"), .guestExited(status: 1)] {
                #expect(throws: LifecycleError.self) { try lifecycle(after: terminal + [event]) }
            }
        }
    }

    @Test func stoppedBeforeStartAndFailedAtCreate() throws {
        #expect(try lifecycle(after: [.stop(reason: "never started")]).reason == "never started")
        #expect(try lifecycle(after: [.fail(reason: "boot")]).state == .failed)
    }
}

@Suite struct PortMapTests {
    func io(_ port: UInt16, _ direction: IOExit.Direction, size: UInt8 = 1, value: UInt64 = 0) -> IOExit {
        IOExit(direction: direction, port: port, size: size, count: 1, dataOffset: 0, value: value)
    }

    @Test func routes() {
        #expect(PortMap.route(io(0x80, .out)) == .heartbeat)
        #expect(PortMap.route(io(0x3F8, .out)) == .consoleWrite)
        #expect(PortMap.route(io(0x3FD, .in)) == .consoleStatus)
        #expect(PortMap.route(io(0xF4, .out, size: 4, value: 0xFFFF_FFFF)) == .exit(status: -1))
        #expect(PortMap.route(io(0xF4, .out, size: 1, value: 3)) == .unhandled)  // status needs a 32-bit write
        #expect(PortMap.route(io(0xEA, .out, size: 4, value: 9)) == .sync(point: 9))
        #expect(PortMap.route(io(0xEB, .out)) == .mapGPARange)
        #expect(PortMap.route(io(0x3F8, .in)) == .unhandled)
        #expect(PortMap.route(io(0x1234, .in)) == .unhandled)
    }
}

@Suite struct ConsoleTests {
    @Test func ringKeepsTheNewestBytes() {
        var ring = ConsoleRing(capacity: 4)
        ring.append(Array("ab".utf8))
        #expect(ring.contents == Array("ab".utf8))
        ring.append(Array("cdef".utf8))
        #expect(ring.contents == Array("cdef".utf8))
        ring.append(Array("g".utf8))
        #expect(ring.contents == Array("defg".utf8))
        ring.append(Array("0123456789".utf8))
        #expect(ring.contents == Array("6789".utf8))
        #expect(ring.totalBytes == 17 && ring.droppedBytes == 13)
    }

    @Test func linesStayWholeAcrossVCPUs() {
        var lines = ConsoleLineBuffer(vcpuCount: 2, maxPending: 8)
        #expect(lines.append(Array("vc".utf8), vcpu: 0).isEmpty)
        #expect(lines.append(Array("vc".utf8), vcpu: 1).isEmpty)
        #expect(lines.append(Array("pu 1\n".utf8), vcpu: 1) == Array("vcpu 1\n".utf8))
        #expect(lines.append(Array("pu 0\nne".utf8), vcpu: 0) == Array("vcpu 0\n".utf8))
        #expect(lines.flush(vcpu: 0) == Array("ne".utf8))
        #expect(lines.flush(vcpu: 0).isEmpty)
        // A partial line longer than maxPending is emitted anyway.
        #expect(lines.append(Array("123456789".utf8), vcpu: 1) == Array("123456789".utf8))
    }
}

@Suite struct HostReportTests {
    func caps(types: [VMType], attributes: [String: UInt64], guestMemfd: Bool = true) -> CapabilityReport {
        CapabilityReport(
            apiVersion: 12, system: [:], vmTypes: types, memoryAttributesByVMType: attributes,
            guestMemfd: guestMemfd, guestMemfdFlags: 3, exitHypercallMask: 1 << 12, memoryFaultInfo: true,
            syncRegsMask: 7, userMemory2: true, vcpusRecommended: 2, vcpusMax: 1024, maxMemslots: 32764)
    }

    @Test func attributesBackendNeedsAPrivateCapableVMType() {
        let here = HostReport.backends(for: caps(types: [.default], attributes: ["default": 0]))
        #expect(here.first { $0.name == .attributes }?.usable == false)
        #expect(here.first { $0.name == .attributes }?.reason.contains("PRIVATE") == true)
        #expect(here.first { $0.name == .alias }?.usable == true)

        let protected = HostReport.backends(
            for: caps(
                types: [.default, .swProtected],
                attributes: ["default": 0, "sw_protected": 8]))
        #expect(protected.first { $0.name == .attributes }?.usable == true)
        let noMemfd = HostReport.backends(
            for: caps(types: [.swProtected], attributes: ["sw_protected": 8], guestMemfd: false))
        #expect(noMemfd.first { $0.name == .attributes }?.usable == false)
    }
}

@Suite struct ConsoleEscaperTests {
    @Test func onlyPrintableASCIINewlineAndTabPass() {
        let raw: [UInt8] = Array("ok\tline\n".utf8) + [0x1B] + Array("[2J".utf8) + [0x07, 0x7F, 0x9B, 0xC3, 0xA9, 0x0D]
        let escaped = String(decoding: ConsoleEscaper.escape(raw), as: UTF8.self)
        #expect(escaped == "ok\tline\n\\x1b[2J\\x07\\x7f\\x9b\\xc3\\xa9\\x0d")
        let plain = Array("nothing to do\n".utf8)
        #expect(ConsoleEscaper.escape(plain) == plain)
    }
}
