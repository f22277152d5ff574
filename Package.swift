// swift-tools-version: 6.0
import PackageDescription

// Hot loops are built for the host CPU (the engine runs where it is built) and without
// exclusivity checks, which cost up to 100x on class-stored buffers in kernels.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "native", "-enforce-exclusivity=unchecked"]),
]
let kernelFast: [SwiftSetting] = fast + [
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Sparrow",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sparrow", targets: ["SparrowCLI"]),
        .executable(name: "sparrow-kernel-bench", targets: ["SparrowKernelBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: a real HTTP client for the server tests.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
    ],
    targets: [
        // Kernel layer: knows tensors and numbers, nothing about models.
        .target(name: "CSparrowSIMD"),
        .target(name: "SparrowKernels", dependencies: ["CSparrowSIMD"], swiftSettings: kernelFast),
        // Model layer.
        .target(name: "SparrowGGUF", dependencies: ["SparrowKernels"], swiftSettings: fast),
        .target(name: "SparrowTokenizer", dependencies: ["SparrowGGUF"], swiftSettings: fast),
        .target(name: "SparrowJinja", swiftSettings: fast),
        .target(
            name: "SparrowEngine",
            dependencies: [
                "SparrowKernels", "SparrowGGUF", "SparrowTokenizer", "SparrowJinja",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            swiftSettings: fast
        ),
        // OpenAI-compatible HTTP server over the engine.
        .target(
            name: "SparrowServer",
            dependencies: [
                "SparrowEngine",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: fast
        ),
        // Thin CLI on top.
        .executableTarget(
            name: "SparrowCLI",
            dependencies: [
                "SparrowEngine", "SparrowServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fast
        ),
        // Micro-benchmark of the kernels on real weights (dev tool).
        .executableTarget(
            name: "SparrowKernelBench",
            dependencies: ["SparrowKernels", "SparrowGGUF", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fast
        ),
        // Hand-made GGUF files, seeded randomness and the catalog models, shared by the tests.
        .target(name: "SparrowTestSupport", dependencies: ["SparrowKernels", "SparrowGGUF", "SparrowEngine"], path: "Tests/SparrowTestSupport"),
        .testTarget(name: "SparrowKernelsTests", dependencies: ["SparrowKernels", "SparrowTestSupport"], swiftSettings: fast),
        .testTarget(name: "SparrowGGUFTests", dependencies: ["SparrowGGUF", "SparrowTestSupport"], swiftSettings: fast),
        .testTarget(name: "SparrowTokenizerTests", dependencies: ["SparrowTokenizer", "SparrowEngine"], swiftSettings: fast),
        .testTarget(name: "SparrowJinjaTests", dependencies: ["SparrowJinja"], swiftSettings: fast),
        .testTarget(name: "SparrowEngineTests", dependencies: ["SparrowEngine", "SparrowTestSupport"], swiftSettings: fast),
        .testTarget(
            name: "SparrowServerTests",
            dependencies: [
                "SparrowServer", "SparrowTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: fast
        ),
    ]
)
