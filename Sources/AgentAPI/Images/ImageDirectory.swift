import Foundation

/// Why `--images-dir` cannot be used.
public struct ImageDirectoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public var description: String { "--images-dir \(path) is not a directory" }
}

/// The only place guest images may be launched from (`--images-dir`). A name is
/// resolved under the directory with symlinks followed; anything that ends up
/// outside it, or is not a regular file, is refused.
public struct ImageDirectory: Sendable {
    public let root: String
    public static let maxImageBytes = 64 << 20

    public init(path: String) throws(ImageDirectoryError) {
        let resolved = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImageDirectoryError(path: path)
        }
        root = resolved
    }

    /// The image's bytes for a name relative to the directory.
    public func load(_ name: String) throws(APIError) -> [UInt8] {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\0"),
            !name.split(separator: "/").contains(where: { $0 == ".." })
        else {
            throw .invalidField("image", "must be a relative path inside the agent's images directory, without '..'")
        }
        let resolved = URL(fileURLWithPath: root).appendingPathComponent(name).resolvingSymlinksInPath().path
        guard resolved.hasPrefix(root + "/") else {
            throw .invalidField("image", "\(name) resolves outside the images directory")
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
            attributes[.type] as? FileAttributeType == .typeRegular
        else {
            throw .invalidField("image", "no image named \(name)")
        }
        if let size = (attributes[.size] as? NSNumber)?.intValue, size > Self.maxImageBytes {
            throw .invalidField("image", "\(name) is larger than \(Self.maxImageBytes) bytes")
        }
        guard let data = FileManager.default.contents(atPath: resolved) else {
            throw .invalidField("image", "cannot read \(name)")
        }
        return [UInt8](data)
    }
}
