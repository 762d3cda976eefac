import APITypes
import Foundation
import TestSupport
import Testing

/// The pictures and the status page as headless Chromium draws them: every text's
/// bounding box is measured in the browser (`Scripts/page_boxes.py`), and no two may
/// overlap, none may leave its picture, and axis labels may not repeat.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct BrowserPicturesTests {
    /// What `page_boxes.py` prints for one page.
    struct Page: Decodable {
        struct Box: Decodable {
            var x: Double, y: Double, w: Double, h: Double
            var text: String?
            var cls: String?
            var svg: Int?

            func overlaps(_ other: Box) -> Bool {
                // Half a pixel of anti-aliasing either way is not an overlap.
                min(x + w, other.x + other.w) - max(x, other.x) > 0.5
                    && min(y + h, other.y + other.h) - max(y, other.y) > 0.5
            }

            func inside(_ outer: Box) -> Bool {
                x >= outer.x - 0.5 && y >= outer.y - 0.5 && x + w <= outer.x + outer.w + 0.5
                    && y + h <= outer.y + outer.h + 0.5
            }
        }
        var url: String
        var title: String
        var h1: String
        var svgs: [Box]
        var texts: [Box]
        var shapes: [Box]
        var liveRows: [String]
        var times: [[String]]
        var images: [[JSONValue]]

        func texts(_ cls: String) -> [String] { texts.filter { $0.cls == cls }.compactMap(\.text) }
    }

    /// An image's `[src, naturalWidth]`.
    enum JSONValue: Decodable {
        case text(String), number(Double)
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Double.self) {
                self = .number(number)
            } else {
                self = .text(try container.decode(String.self))
            }
        }
    }

    /// Three ended VMs with labels: a quarter, half and one page of data RAM shared.
    func agentWithThreeVMs() throws -> (AgentProcess, [(id: Int, name: String)]) {
        let agent = try AgentProcess()
        var vms: [(Int, String)] = []
        for (name, pages, tenant) in [("quarter", "780", "a"), ("half", "f00", "b"), ("one-page", "1", "c")] {
            let response = try agent.request(
                "POST", "/v1/vms",
                json: #"""
                    {"name":"\#(name)","image":"explicit.elf","memory_mib":32,"command_line":"0:\#(pages):0","labels":{"tenant":"\#(tenant)"}}
                    """#)
            #expect(response.status == 201, "\(response.text)")
            let id = AgentProcess.object(response)["id"] as? Int ?? -1
            _ = try agent.waitForEnd(id)
            vms.append((id, name))
        }
        return (agent, vms)
    }

    /// Signs Chromium in through a form and measures each page.
    func measure(_ agent: AgentProcess, _ paths: [String], screenshot: URL? = nil) throws -> [Page] {
        guard let chromium = LiveDriver.chromium() else { return [] }
        let form = try LiveDriver.signInForm(agent)
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/AgentCLITests/Scripts/page_boxes.py").path
        let urls = paths.map { "http://127.0.0.1:\(agent.port)\($0)" }
        let run = try TestSupport.run(
            "/usr/bin/python3",
            [script, chromium, form.absoluteString] + (screenshot.map { ["--screenshot", $0.path] } ?? []) + urls,
            environment: LiveDriver.environment(agent))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let pages = run.stdout.split(separator: "\n").compactMap { try? decoder.decode(Page.self, from: Data($0.utf8)) }
        try #require(
            pages.count == paths.count,
            "page_boxes.py: \(run.stdout.suffix(800)) \(run.stderr.suffix(800)); chromium: \(LiveDriver.chromiumLogTail(agent))"
        )
        return pages
    }

    /// No two texts of one picture overlap, and each stays inside its picture.
    func expectLegible(_ page: Page, sourceLocation: SourceLocation = #_sourceLocation) {
        for (index, text) in page.texts.enumerated() {
            guard let svg = text.svg, page.svgs.indices.contains(svg) else { continue }
            #expect(
                text.inside(page.svgs[svg]), "\(page.url): \"\(text.text ?? "")\" leaves its picture",
                sourceLocation: sourceLocation)
            for other in page.texts[(index + 1)...] where other.svg == svg && text.overlaps(other) {
                Issue.record(
                    "\(page.url): \"\(text.text ?? "")\" overlaps \"\(other.text ?? "")\"",
                    sourceLocation: sourceLocation)
            }
        }
    }

    @Test func theHistoryChartReadsAtAGlance() throws {
        let (agent, vms) = try agentWithThreeVMs()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let pages = try measure(agent, vms.map { "/v1/vms/\($0.id)/history.svg" })
        for (page, vm) in zip(pages, vms) {
            expectLegible(page)
            let xTicks = page.texts("x-tick"), yTicks = page.texts("y-tick")
            #expect(xTicks.count >= 2 && Set(xTicks).count == xTicks.count, "\(vm.name): time labels repeat: \(xTicks)")
            #expect(yTicks.count >= 2 && Set(yTicks).count == yTicks.count, "\(vm.name): byte labels repeat: \(yTicks)")
            // The scale follows the data: the step line climbs most of the plot for every VM, one page or 15 MiB.
            let plot = try #require(page.shapes.first { $0.cls == "plot" }),
                step = try #require(page.shapes.first { $0.cls == "step" })
            #expect(
                step.h >= plot.h * 0.5, "\(vm.name): the history is a line \(step.h) px high in a \(plot.h) px plot")
        }
        #expect(
            pages.last.map { $0.texts("y-tick").last == "4 KiB" } == true,
            "the one-page VM's scale tops at 4 KiB: \(pages.last?.texts("y-tick") ?? [])")
    }

    @Test func theMemoryMapLabelsEveryBoundaryInBinaryUnits() throws {
        let (agent, vms) = try agentWithThreeVMs()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let pages = try measure(
            agent,
            vms.map { "/v1/vms/\($0.id)/memory.svg" } + [
                "/v1/vms/\(vms[0].id)/memory.svg?from=0x400000&to=0x800000",
                "/v1/vms/\(vms[2].id)/memory.svg?from=0x200000&to=0x210000",
            ])
        for (page, vm) in zip(pages, vms) {
            expectLegible(page)
            let memory = try APIJSON.decoder().decode(
                VMMemory.self, from: Data(try agent.request("GET", "/v1/vms/\(vm.id)/memory").body))
            // Where the state changes, and where the map ends: each has its address under the bar.
            var boundaries = ["0x0"]
            var previous = "boot"
            for run in memory.runs where run.state != previous {
                boundaries.append("0x" + String(run.start, radix: 16))
                previous = run.state
            }
            boundaries.append("0x" + String(memory.dataRamEnd, radix: 16))
            // A run narrower than a pixel (one 4 KiB page of 32 MiB) is merged, and the picture says so; zoomed, it has its labels.
            let merged = page.texts.contains { $0.text?.contains("narrower than a pixel merged") == true }
            if merged {
                #expect(
                    Set(page.texts("boundary")).isSubset(of: boundaries) && page.texts("boundary").first == "0x0",
                    "\(vm.name)")
            } else {
                #expect(page.texts("boundary") == boundaries, "\(vm.name)")
            }
            #expect(
                page.texts("total-shared").first?.hasPrefix("shared: \(humanBytes(memory.sharedBytes)) (") == true,
                "\(page.texts("total-shared"))")
        }
        // Zoomed with the hex addresses the labels show.
        let zoomed = pages[3], page = pages[4]
        expectLegible(zoomed)
        expectLegible(page)
        #expect(
            zoomed.texts("boundary").first == "0x400000" && zoomed.texts("boundary").last == "0x800000",
            "\(zoomed.texts("boundary"))")
        #expect(
            page.texts("boundary") == ["0x200000", "0x201000", "0x210000"],
            "the one shared page, zoomed: \(page.texts("boundary"))")
    }

    /// The status page names its agent, its VMs and its times, and shows events as it loads.
    /// With MEMGATE_SCREENSHOT set, the full page is kept there (docs/status-page.png).
    @Test func theStatusPageNamesItsAgentVMsAndTimes() throws {
        let (agent, vms) = try agentWithThreeVMs()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let shot = agent.directory.appendingPathComponent("status-full.png")
        let page = try #require(try measure(agent, ["/"], screenshot: shot).first)
        #expect(page.h1.contains("127.0.0.1:\(agent.port)"), "the heading says where: \(page.h1)")
        #expect(page.title.contains("127.0.0.1:\(agent.port)"))
        expectLegible(page)
        // The live table is filled as the page loads: the newest events, with names.
        #expect(page.liveRows.count >= 3, "the live table is empty at load")
        for vm in vms {
            #expect(page.liveRows.contains { $0.contains("\(vm.name) (VM \(vm.id))") }, "no row names \(vm.name)")
        }
        // Times read as ago, with the UTC time on hover.
        #expect(!page.times.isEmpty)
        for time in page.times {
            #expect(
                time.count == 2 && (time[0].hasSuffix(" ago") || time[0] == "just now") && time[1].hasSuffix(" UTC"),
                "\(time)")
        }
        // Three history charts loaded.
        #expect(
            page.images.count == 3
                && page.images.allSatisfy { if case .number(let width) = $0.last { width > 0 } else { false } })
        if let keep = ProcessInfo.processInfo.environment["MEMGATE_SCREENSHOT"] {
            _ = try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: shot, to: URL(fileURLWithPath: keep))
        }
    }
}
