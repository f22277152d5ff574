import ArgumentParser

@main
struct SparrowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparrow",
        abstract: "Run GGUF language models on the CPU.",
        subcommands: [GenerateCommand.self, ServeCommand.self, EvalCommand.self, CalibrateCommand.self, BenchCommand.self, TokenizeCommand.self, ModelsCommand.self]
    )
}
