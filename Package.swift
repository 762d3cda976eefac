// swift-tools-version: 6.0
import PackageDescription

let strict: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"])]

let package = Package(
    name: "MemGate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "memgate-agent", targets: ["memgate-agent"]),
        .executable(name: "memgatectl", targets: ["memgatectl"]),
        .executable(name: "bench-exitloop", targets: ["bench-exitloop"]),
        .executable(name: "bench-conversions", targets: ["bench-conversions"]),
        .executable(name: "bench-store", targets: ["bench-store"]),
        .executable(name: "bench-stream", targets: ["bench-stream"]),
        .executable(name: "bench-lifecycle", targets: ["bench-lifecycle"]),
        .executable(name: "bench-history", targets: ["bench-history"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C shims: ABI declarations and typed wrappers around variadic/macro C APIs. No logic.
        .target(name: "CKVM"),
        .target(name: "CLinux"),
        .target(name: "CNet"),
        // The guest boot ABI, shared verbatim with guests (header is a link to Guests/include).
        .target(name: "CGuestABI"),
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Clocks, inherited descriptors, termination signals and process limits: the libc corner every layer shares.
        .target(name: "Platform", dependencies: ["CLinux"], swiftSettings: strict),
        .target(
            name: "KVM",
            dependencies: ["CKVM", "CLinux"],
            swiftSettings: strict),
        // Pure logic, no I/O: page-state map, conversion requests, policy.
        .target(name: "MemoryModel", dependencies: ["JSON"], swiftSettings: strict),
        .target(
            name: "VMM",
            dependencies: [
                "KVM", "MemoryModel", "CGuestABI", "Platform", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The one JSON byte writer (escaping, integers): hot pages, rows from SQLite, error bodies.
        .target(name: "JSON", swiftSettings: strict),
        // Pure JSON wire types of API v1, shared by the agent and the controller.
        .target(name: "APITypes", dependencies: ["JSON"], swiftSettings: strict),
        // Pure pictures of the API's data: the SVG memory map and the HTML status page.
        .target(name: "Pictures", dependencies: ["APITypes"], swiftSettings: strict),
        // SQLite for every writer: connection, statements, one transaction helper, the migrator, safe files.
        .target(name: "SQLite", dependencies: ["CSQLite"], swiftSettings: strict),
        // SQLite event store; Migrations/ (linked in as a resource) is the schema's single source.
        .target(
            name: "EventStore",
            dependencies: [
                "SQLite", "JSON", "MemoryModel", "APITypes", "Platform",
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Migrations")],
            swiftSettings: strict),
        // The VMs of one host: creation with registration, lifecycle, the record of every end.
        .target(
            name: "VMProcess",
            dependencies: [
                "VMM", "KVM", "MemoryModel", "EventStore", "Platform", "CLinux", "CNet",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "AgentHost",
            dependencies: [
                "VMM", "KVM", "MemoryModel", "EventStore", "VMProcess", "Platform", "CLinux",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // API v1: requests become typed actions at the edge; one place maps errors to responses.
        .target(
            name: "AgentAPI",
            dependencies: [
                "AgentHost", "APITypes", "JSON", "Pictures", "EventStore", "HTTPServer", "VMM", "MemoryModel",
                "Platform",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The fleet controller: libcurl multi fan-out, merging, policy push, audit pull. Never imports KVM or VMM.
        .target(
            name: "Controller",
            dependencies: ["CCurl", "CPQ", "APITypes", "JSON", "MemoryModel", "SQLite"],
            resources: [.copy("FleetMigrations"), .copy("RolloutMigrations")],
            swiftSettings: strict),
        .executableTarget(
            name: "memgatectl",
            dependencies: [
                "Controller", "APITypes", "JSON", "MemoryModel", "Platform",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        // epoll HTTP/1.1 server: pure parser and connection state machine, thin socket shell.
        .target(
            name: "HTTPServer",
            dependencies: ["CNet", "JSON", "Platform", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .executableTarget(
            name: "memgate-agent",
            dependencies: [
                "VMM", "KVM", "MemoryModel", "EventStore", "AgentHost", "AgentAPI", "APITypes", "HTTPServer",
                "Platform", "VMProcess", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(name: "BenchmarkSupport", path: "Benchmarks/Support", swiftSettings: strict),
        // A guest as serve runs it (its own process, its ring drained into a store), for the benchmarks that compare.
        .target(
            name: "BenchmarkOwnProcess",
            dependencies: [
                "AgentHost", "EventStore", "VMProcess", "KVM", "VMM", "MemoryModel", "Platform",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/OwnProcess", swiftSettings: strict),
        .executableTarget(
            name: "bench-conversions",
            dependencies: [
                "VMM", "KVM", "MemoryModel", "BenchmarkSupport", "BenchmarkOwnProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Conversions",
            exclude: ["floor.c"],
            swiftSettings: strict),
        .executableTarget(
            name: "bench-store",
            dependencies: [
                "VMM", "KVM", "MemoryModel", "EventStore", "BenchmarkSupport", "BenchmarkOwnProcess", "Platform",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Store",
            exclude: ["baseline.c"],
            swiftSettings: strict),
        .executableTarget(
            name: "bench-stream",
            dependencies: [
                "Controller", "APITypes", "EventStore", "MemoryModel", "BenchmarkSupport", "Platform",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Stream",
            exclude: ["readers.c"],
            swiftSettings: strict),
        .executableTarget(
            name: "bench-lifecycle",
            dependencies: [
                "AgentHost", "EventStore", "VMProcess", "VMM", "KVM", "MemoryModel", "Platform", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Lifecycle",
            swiftSettings: strict),
        .executableTarget(
            name: "bench-history",
            dependencies: [
                "EventStore", "SQLite", "MemoryModel", "Platform", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/History",
            swiftSettings: strict),
        .executableTarget(
            name: "bench-exitloop",
            dependencies: [
                "VMM", "KVM", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ExitLoop",
            exclude: ["baseline.c"],
            swiftSettings: strict),

        // Helpers shared by the test targets: paths to built guests and binaries, subprocesses.
        .target(
            name: "TestSupport",
            dependencies: ["CNet", "Controller", "KVM", "VMM", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "MemoryModelTests", dependencies: ["MemoryModel", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "EventStoreTests",
            dependencies: [
                "EventStore", "SQLite", "MemoryModel", "VMM", "KVM", "Platform", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "HTTPServerTests",
            dependencies: ["HTTPServer", "Platform", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "JSONTests", dependencies: ["JSON"], swiftSettings: strict),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"], swiftSettings: strict),
        .testTarget(name: "APITypesTests", dependencies: ["APITypes", "JSON"], swiftSettings: strict),
        .testTarget(name: "PicturesTests", dependencies: ["Pictures", "APITypes"], swiftSettings: strict),
        .testTarget(
            name: "VMProcessTests", dependencies: ["VMProcess", "VMM", "MemoryModel", "Platform"], swiftSettings: strict
        ),
        .testTarget(
            name: "AgentAPITests", dependencies: ["AgentAPI", "APITypes", "HTTPServer", "EventStore", "Platform"],
            swiftSettings: strict),
        .testTarget(
            name: "AgentHostTests",
            dependencies: [
                "AgentHost", "EventStore", "SQLite", "KVM", "MemoryModel", "VMM", "Platform", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "ControllerTests", dependencies: ["Controller", "APITypes", "JSON", "MemoryModel", "Platform"],
            swiftSettings: strict),
        .testTarget(
            name: "MemgatectlTests",
            dependencies: ["TestSupport", "HTTPServer", "APITypes", "SQLite", "MemoryModel"],
            swiftSettings: strict),
        .testTarget(
            name: "KVMTests", dependencies: ["KVM", "CKVM", "CGuestABI", "MemoryModel", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "VMMTests",
            dependencies: [
                "VMM", "KVM", "MemoryModel", "CGuestABI", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "AgentCLITests", dependencies: ["TestSupport", "HTTPServer", "APITypes", "SQLite", "Controller"],
            exclude: ["Scripts"],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
