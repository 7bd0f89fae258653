// swift-tools-version:6.0
// moeq: convert huge Mixture-of-Experts checkpoints into files people can run, and prove they fit and work.
import PackageDescription

let package = Package(
    name: "moeq",
    products: [
        .executable(name: "moeq", targets: ["moeq"]),
        .library(name: "MoeqKit", targets: ["OutputPlanning", "ConversionPipeline", "ReferenceEngine", "HardwarePlanner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // MARK: System libraries (module maps + pkg-config; no Swift inside)
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CXXHash", pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"])]),

        // The reference engine's f32 product whose every row is computed the same way whatever else is in the batch
        // (C, for AVX2 + FMA chosen at run time with a portable path of identical arithmetic; optimized in debug too).
        .target(name: "CRowGEMM", cSettings: [.unsafeFlags(["-O2"])]),

        // MARK: Layered libraries (a lower target never imports a higher one)
        // The kernels are optimized in debug builds too: the tests push whole checkpoints through them, and
        // unoptimized SIMD code is ~30× slower (the bytes are the same either way; the tests check them).
        .target(name: "QuantKernels", dependencies: ["CRowGEMM"], swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(
            name: "TensorFormats",
            dependencies: [
                "QuantKernels", "CXXHash", "CZstd",
                .product(name: "SystemPackage", package: "swift-system"), .product(name: "Yams", package: "Yams"),
            ]),
        .target(name: "ModelCatalog", dependencies: ["TensorFormats", "QuantKernels"], resources: [.copy("Resources/models")]),
        .target(name: "OutputPlanning", dependencies: ["ModelCatalog", "TensorFormats", "QuantKernels"]),
        .target(name: "ReferenceEngine", dependencies: ["ModelCatalog", "TensorFormats", "QuantKernels", "COpenBLAS", "CRowGEMM"]),
        .target(
            name: "HardwarePlanner", dependencies: ["ModelCatalog", "QuantKernels", "OutputPlanning", "TensorFormats"],
            resources: [.copy("Resources/targets.json")]),
        .target(name: "ConversionPipeline", dependencies: ["ModelCatalog", "OutputPlanning", "TensorFormats", "QuantKernels"]),

        // MARK: The command-line tool
        .executableTarget(
            name: "moeq",
            dependencies: [
                "ConversionPipeline", "OutputPlanning", "ReferenceEngine", "HardwarePlanner", "ModelCatalog", "TensorFormats",
                "QuantKernels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: Tests (one target per library target)
        .testTarget(name: "QuantKernelsTests", dependencies: ["QuantKernels", "TensorFormats", "CRowGEMM"]),
        .testTarget(name: "TensorFormatsTests", dependencies: ["TensorFormats", "QuantKernels"]),
        .testTarget(name: "ModelCatalogTests", dependencies: ["ModelCatalog", "TensorFormats"]),
        .testTarget(name: "OutputPlanningTests", dependencies: ["OutputPlanning", "ModelCatalog", "TensorFormats", "QuantKernels"]),
        .testTarget(
            name: "ReferenceEngineTests",
            dependencies: [
                "ReferenceEngine", "ConversionPipeline", "OutputPlanning", "TensorFormats", "ModelCatalog", "QuantKernels", "CRowGEMM",
            ]),
        .testTarget(
            name: "HardwarePlannerTests",
            dependencies: ["HardwarePlanner", "ModelCatalog", "ConversionPipeline", "OutputPlanning", "TensorFormats", "QuantKernels"]),
        .testTarget(
            name: "ConversionPipelineTests",
            dependencies: ["ConversionPipeline", "OutputPlanning", "ModelCatalog", "TensorFormats", "QuantKernels"]),
    ]
)
