import Foundation
import Logging
import SQLite
import Testing

@testable import EventStore

/// Files beside the database are never reached through a link: whatever a link
/// points to stays exactly as it was, and the store says which file is wrong.
@Suite struct StoreFileTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A 1 MiB file of a pattern: the "precious" target of a planted link.
    func precious(in dir: URL) throws -> (path: String, bytes: Data) {
        let bytes = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let path = dir.appendingPathComponent("precious").path
        try bytes.write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    @Test(arguments: ["-ring", ".lock", "-wal", "-shm", ""])
    func aSymlinkBesideTheDatabaseIsRefusedAndItsTargetUntouched(suffix: String) throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = try precious(in: dir)
        let database = dir.appendingPathComponent("agent.db").path
        try FileManager.default.createSymbolicLink(atPath: database + suffix, withDestinationPath: target.path)
        var refusal: EventStoreError?
        do {
            let store = try EventStore(path: database, logger: logger)
            store.close()
        } catch {
            refusal = error
        }
        let failure = try #require(refusal, "a symlink at \(database + suffix) must be refused")
        #expect("\(failure)".contains("symbolic link"), "\(failure)")
        #expect(FileManager.default.contents(atPath: target.path) == target.bytes)
    }

    @Test func aHardLinkedRingIsRefusedAndItsTargetUntouched() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = try precious(in: dir)
        let database = dir.appendingPathComponent("agent.db").path
        try FileManager.default.linkItem(atPath: target.path, toPath: database + "-ring")
        #expect(throws: EventStoreError.self) { try EventStore(path: database, logger: logger) }
        #expect(FileManager.default.contents(atPath: target.path) == target.bytes)
    }

    @Test func aRingThatIsADirectoryOrFIFOIsRefused() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("agent.db").path
        #expect(mkfifo(database + "-ring", 0o600) == 0)
        #expect(throws: EventStoreError.self) { try EventStore(path: database, logger: logger) }
    }

    @Test func filesOfAnotherOwnerAreNamedAsSuch() {
        var info = stat()
        info.st_mode = S_IFREG | 0o600
        info.st_nlink = 1
        info.st_uid = 4242
        #expect(StoreFiles.problem(with: info, owner: 0)?.contains("uid 4242") == true)
        info.st_uid = 0
        #expect(StoreFiles.problem(with: info, owner: 0) == nil)
        info.st_nlink = 2
        #expect(StoreFiles.problem(with: info, owner: 0)?.contains("hard links") == true)
    }

    @Test func aCleanDirectoryStillWorks() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("agent.db").path
        let store = try EventStore(path: database, logger: logger)
        store.close()
        // Reopening finds its own files and accepts them.
        let again = try EventStore(path: database, logger: logger)
        again.close()
    }
}
