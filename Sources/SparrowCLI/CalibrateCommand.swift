import ArgumentParser
import Foundation
import SparrowEngine
import SparrowKernels

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Choose an acceleration method's settings for a model by measurement.",
        subcommands: [CalibrateGemFilterCommand.self, CalibrateSparsityCommand.self]
    )
}

/// Sweeps GemFilter's filter layer upwards on needle prompts and saves the smallest layer that
/// retrieves as well as full attention, where `--gemfilter` finds it for this model.
struct CalibrateGemFilterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemfilter",
        abstract: "Find the smallest GemFilter layer whose needle retrieval matches full attention."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var needleOptions: NeedleOptions

    @OptionGroup var selection: GemFilterSelectionOptions

    // 0.5 let a layer through that kept a number without the words naming it, and missed once
    // on another book.
    @Option(parsing: .unconditional, help: "The least fraction of the needle's tokens the chosen layer must keep in every prompt.")
    var minRetention = 0.85

    func validate() throws {
        if !(0...1).contains(minRetention) { throw ValidationError("--min-retention must be within 0...1") }
    }

    func run() throws {
        let model = try modelOptions.load()
        let sha256 = try ModelStore().sha256(ofModelAt: model.file.path)
        let evaluation = try needleOptions.evaluation(model: model, threads: modelOptions.threads)
        let calibration = try GemFilterCalibration.run(evaluation, modelSHA256: sha256, lengths: needleOptions.lengthList(),
                                                       depths: needleOptions.depthList(), filter: selection.filter(layer: 0),
                                                       minRetention: minRetention) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        try calibration.save()
        print("GemFilter layer \(calibration.layer) for \(model.file.path) (sha256 \(sha256)): \(calibration.trials.last?.hits ?? 0) hits vs "
            + "\(calibration.fullAttentionHits) with full attention; saved to \(calibration.file().path)")
    }
}

/// Collects feed-forward activations over calibration text and trains contextual sparsity's
/// predictors and thresholds, saving a sidecar for `--sparsity`.
struct CalibrateSparsityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparsity",
        abstract: "Train Deja Vu neuron predictors and calibrate CATS / TEAL thresholds on real text."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "A file of real text (UTF-8) to calibrate on; evaluate on another.")
    var text: String

    @Option(name: [.customShort("o"), .long], help: "Where to save the sidecar (default: beside the models, where --sparsity default finds it).")
    var output: String?

    @Option(parsing: .unconditional, help: "Calibration tokens (one training row per token and layer).")
    var tokens = 16384

    @Option(parsing: .unconditional, help: "The predictors' rank (a multiple of 32).")
    var rank = 64

    @Option(parsing: .unconditional, help: "Most training epochs per layer.")
    var epochs = 20

    func validate() throws {
        if tokens < 1024 { throw ValidationError("--tokens must be at least 1024") }
        if rank < 32 || rank % 32 != 0 { throw ValidationError("--rank must be a positive multiple of 32") }
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
    }

    func run() throws {
        try rejectInvalidUTF8Arguments()
        let model = try modelOptions.load()
        let sha256 = try ModelStore().sha256(ofModelAt: model.file.path)
        var options = SparsityCalibration.Options()
        options.tokens = tokens
        options.rank = rank
        options.epochs = epochs
        let pool = modelOptions.pool()
        let sidecar = try SparsityCalibration.run(model: model, text: try readText(file: text, role: "calibration text"),
                                                  textName: URL(fileURLWithPath: text).lastPathComponent, modelSHA256: sha256,
                                                  options: options, pool: pool) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        let path = output ?? SparsitySidecar.defaultPath(for: sha256)
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        try sidecar.write(to: path)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        print(String(format: "saved %@ (%.1f MiB) in %.0f s", path, Double(size) / 1_048_576, sidecar.header.calibration.seconds))
    }
}
