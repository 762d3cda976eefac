import APITypes
import Foundation
import Testing

@testable import Pictures

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The memory map picture: valid XML, widths adding up to the whole, exact totals.
@Suite struct MemoryMapSVGTests {
    /// 32 MiB: a 2 MiB boot region, then data RAM with `shared` pages (4 KiB each) shared.
    func memory(sharedPages: [UInt64] = []) -> VMMemory {
        let dataStart: UInt64 = 0x20_0000, dataEnd: UInt64 = 0x200_0000
        var runs: [MemoryRun] = []
        var cursor = dataStart
        for page in sharedPages.sorted() {
            let start = dataStart + page * 4096
            if start > cursor { runs.append(MemoryRun(start: cursor, end: start, state: "private")) }
            runs.append(MemoryRun(start: start, end: start + 4096, state: "shared"))
            cursor = start + 4096
        }
        if cursor < dataEnd { runs.append(MemoryRun(start: cursor, end: dataEnd, state: "private")) }
        let shared = UInt64(sharedPages.count) * 4096
        return VMMemory(
            vmId: 3, bootRegion: MemoryRun(start: 0, end: dataStart, state: "boot"), dataRamStart: dataStart,
            dataRamEnd: dataEnd, privateBytes: dataEnd - dataStart - shared, sharedBytes: shared, runs: runs)
    }

    final class Collector: NSObject, XMLParserDelegate {
        var rects: [[String: String]] = []
        var texts: [String] = []
        /// Each text element's attributes and content.
        var labelled: [(attributes: [String: String], text: String)] = []
        var current = ""
        var attributes: [String: String] = [:]
        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            if name == "rect" { rects.append(attributes) }
            self.attributes = attributes
            current = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" || name == "title" { texts.append(current) }
            if name == "text" { labelled.append((attributes, current)) }
        }

        /// The exact bytes behind the text of class `total-KIND`.
        func exactBytes(_ kind: String) -> UInt64? {
            labelled.first { $0.attributes["class"] == "total-\(kind)" }.flatMap {
                UInt64($0.attributes["data-bytes"] ?? "")
            }
        }
    }

    func parse(_ svg: String) throws -> Collector {
        let collector = Collector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        #expect(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        return collector
    }

    func barWidths(_ collector: Collector) -> [String: Int] {
        var widths: [String: Int] = [:]
        for rect in collector.rects {
            if let kind = rect["class"] { widths[kind, default: 0] += Int(rect["width"] ?? "") ?? 0 }
        }
        return widths
    }

    @Test func aQuarterSharedIsDrawnToScaleWithExactTotals() throws {
        // Pages 0..<1536 of 7680 data pages shared: 6 MiB of 30 MiB.
        let svg = MemoryMapSVG().render(
            memory(sharedPages: Array(0..<1536)), name: "tenant <a> & \"b\"", drawnAt: "2026-11-25 12:00:00 UTC")
        let picture = try parse(svg)
        let widths = barWidths(picture)
        #expect(widths.values.reduce(0, +) == 800)
        // 2 MiB boot, 6 MiB shared, 24 MiB private of 32 MiB: 50, 150 and 600 pixels.
        #expect(widths == ["boot": 50, "shared": 150, "private": 600])
        // Percentages of data RAM, as the CLI's bar and the status page give them.
        // Binary units to read, exact bytes in data-bytes.
        #expect(picture.texts.contains("boot region: 2.0 MiB (not data RAM)"))
        #expect(picture.texts.contains("shared: 6.0 MiB (20.0% of data RAM)"))
        #expect(picture.texts.contains("private: 24.0 MiB (80.0% of data RAM)"))
        #expect(
            picture.exactBytes("boot") == 2_097_152 && picture.exactBytes("shared") == 6_291_456
                && picture.exactBytes("private") == 25_165_824)
        #expect(picture.texts.contains { $0.contains("1537 runs of data RAM in 3 segments") }, "\(picture.texts)")
        #expect(picture.texts.contains { $0.contains("tenant <a> & \"b\"") })
        #expect(picture.texts.contains { $0.contains("drawn 2026-11-25 12:00:00 UTC") })
        // Every run boundary has its address, and the end of the range too.
        let boundaries = picture.labelled.filter { $0.attributes["class"] == "boundary" }.map(\.text)
        #expect(boundaries == ["0x0", "0x200000", "0x800000", "0x2000000"])
        #expect(
            picture.rects.contains {
                $0["class"] == "shared" && $0["data-start"] == "0x200000" && $0["data-end"] == "0x800000"
            })
    }

    /// Thousands of runs narrower than a pixel: still 800 pixels, and the merge is said.
    /// A boundary inside a pixel column is labelled with the run's own start, not the column's.
    /// Names stored before names were checked may hold anything: the picture stays well-formed XML.
    @Test func nonCharactersAndControlsInANameStillMakeValidXML() throws {
        let name =
            "vm" + String(Character(Unicode.Scalar(0xFFFE)!)) + "\u{1B}[2J<&>"
            + String(Character(Unicode.Scalar(0xFFFF)!))
        let svg = MemoryMapSVG().render(memory(), name: name, drawnAt: "2026-11-27 12:00:00 UTC")
        _ = try parse(svg)
        #expect(!svg.unicodeScalars.contains { $0.value == 0xFFFE || $0.value == 0xFFFF || $0.value == 0x1B })
    }

    @Test func boundaryLabelsAreRunStarts() throws {
        let svg = MemoryMapSVG().render(memory(sharedPages: Array(0..<1920)), name: "q", drawnAt: "now")
        let picture = try parse(svg)
        #expect(picture.texts.contains("0x980000"), "\(picture.texts)")
        #expect(picture.rects.contains { $0["class"] == "private" && $0["data-start"] == "0x980000" })
    }

    /// Labels never overlap by the estimate (the Chromium test measures the real boxes), and a
    /// boundary without room on either row is left out, not drawn over another.
    @Test func labelsTakeTheFirstRowWithRoom() {
        let placed = MemoryMapSVG.placeLabels(
            [(16, 0), (20, 0x1000), (24, 0x2000), (200, 0x300000), (828, 0x2000000)], rightEdge: 828)
        #expect(placed.map(\.row) == [0, 1, 0, 0])
        #expect(placed.map(\.address) == [0, 0x1000, 0x300000, 0x2000000])
        #expect(placed.last?.anchorEnd == true && placed.first?.anchorEnd == false)
    }

    @Test func thousandsOfRunsMergeIntoPixels() throws {
        let pages = Array(stride(from: UInt64(0), to: 7680, by: 2))  // every other page shared: 7,680 runs
        // Drawn column by column: the picture's size is bounded by its width, whatever the run count.
        let svg = MemoryMapSVG().render(memory(sharedPages: pages), name: "checkerboard", drawnAt: "now")
        let picture = try parse(svg)
        #expect(barWidths(picture).values.reduce(0, +) == 800)
        #expect(picture.rects.count < 820)
        #expect(picture.texts.contains { $0.contains("7680 runs narrower than a pixel merged") })
        #expect(picture.texts.contains { $0.contains("boundaries too close to label (zoom in with from and to)") })
        #expect(
            picture.texts.contains("shared: 15.0 MiB (50.0% of data RAM)") && picture.exactBytes("shared") == 15_728_640
        )
    }

    @Test func zoomShowsOnlyTheRange() throws {
        let memory = memory(sharedPages: Array(256..<512))  // [3 MiB, 4 MiB) shared
        let svg = MemoryMapSVG().render(memory, name: "z", drawnAt: "now", from: 0x20_0000, to: 0x60_0000)
        let picture = try parse(svg)
        #expect(barWidths(picture) == ["private": 600, "shared": 200])
        #expect(
            picture.texts.contains("shared: 1.0 MiB (25.0% of data RAM)") && picture.exactBytes("shared") == 1_048_576)
        #expect(picture.texts.contains("boot region: 0 B (not data RAM)"))
        let boundaries = picture.labelled.filter { $0.attributes["class"] == "boundary" }.map(\.text)
        #expect(boundaries == ["0x200000", "0x300000", "0x400000", "0x600000"])
        // A range outside RAM is an empty bar, not a trap.
        let empty = try parse(MemoryMapSVG().render(memory, name: "z", drawnAt: "now", from: 1 << 40, to: 1 << 41))
        #expect(barWidths(empty).isEmpty)
    }
}
