// swift-tools-version:6.0
// moeq: convert huge Mixture-of-Experts checkpoints into files people can run, and prove they fit and work.
import PackageDescription

let package = Package(
    name: "moeq",
    products: [
        .executable(name: "moeq", targets: ["moeq"]),
        .library(name: "MoeqKit", targets: ["ConversionPipeline", "ReferenceEngine", "HardwarePlanner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: System libraries (module maps + pkg-config; no Swift inside)
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),

        // MARK: Layered libraries (a lower target never imports a higher one)
        .target(name: "QuantKernels"),
        .target(name: "TensorFormats", dependencies: ["QuantKernels", "CXXHash", "CZstd"]),
        .target(name: "ModelCatalog", dependencies: ["TensorFormats", "QuantKernels"], resources: [.copy("Resources/models")]),
        .target(name: "ReferenceEngine", dependencies: ["ModelCatalog", "TensorFormats", "QuantKernels", "COpenBLAS"]),
        .target(name: "HardwarePlanner", dependencies: ["ModelCatalog", "QuantKernels", "ConversionPipeline", "TensorFormats"],
                resources: [.copy("Resources/targets.json")]),
        .target(name: "ConversionPipeline", dependencies: ["ModelCatalog", "TensorFormats", "QuantKernels"]),

        // MARK: The command-line tool
        .executableTarget(name: "moeq", dependencies: [
            "ConversionPipeline", "ReferenceEngine", "HardwarePlanner", "ModelCatalog", "TensorFormats",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // MARK: Tests (one target per library target)
        .testTarget(name: "QuantKernelsTests", dependencies: ["QuantKernels", "TensorFormats"]),
        .testTarget(name: "TensorFormatsTests", dependencies: ["TensorFormats", "QuantKernels"]),
        .testTarget(name: "ModelCatalogTests", dependencies: ["ModelCatalog", "TensorFormats"]),
        .testTarget(name: "ReferenceEngineTests", dependencies: ["ReferenceEngine", "ConversionPipeline", "TensorFormats", "ModelCatalog"]),
        .testTarget(name: "HardwarePlannerTests", dependencies: ["HardwarePlanner", "ModelCatalog", "ConversionPipeline", "TensorFormats"]),
        .testTarget(name: "ConversionPipelineTests", dependencies: ["ConversionPipeline", "ModelCatalog", "TensorFormats"]),
    ]
)
