import Foundation

/// `events --follow --since-file F`: each host's last event id, kept across runs so a
/// follower started again resumes where the last one stopped. Written whole to a
/// temporary file and renamed over the old one, so a crash leaves one or the other.
enum SinceFile {
    struct Contents: Codable {
        var hosts: [String: Int64]
    }

    static func load(_ path: String?) throws -> [String: Int64] {
        guard let path, FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path),
            let contents = try? JSONDecoder().decode(Contents.self, from: data)
        else {
            throw CtlFailure.usage(
                "\(path) is not a --since-file memgatectl wrote ({\"hosts\":{\"NAME\":ID,…}}); move it away to start afresh"
            )
        }
        return contents.hosts
    }

    static func save(_ positions: [String: Int64], to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let temporary = path + ".tmp"
        do {
            try encoder.encode(Contents(hosts: positions)).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else {
                throw CtlFailure.failed("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
            }
        } catch let failure as CtlFailure {
            throw failure
        } catch {
            throw CtlFailure.failed("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
