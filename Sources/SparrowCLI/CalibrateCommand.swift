import ArgumentParser
import Foundation
import SparrowEngine

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Choose an acceleration method's settings for a model by measurement.",
        subcommands: [CalibrateGemFilterCommand.self]
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
    @Option(help: "The least fraction of the needle's tokens the chosen layer must keep in every prompt.")
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
