import Foundation
import Hummingbird
import Logging
import SparrowEngine
import SparrowKernels

/// How the server runs: where it listens, what it serves, and the methods' defaults.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (reported to `run`'s `onRunning`).
    public var port = 8080
    /// The name clients give as `model`.
    public var modelID: String
    public var contextSize: Int
    /// Sequences generated at once, each with its own cache.
    public var slots = 4
    /// Requests waiting beyond the slots before the server answers 503.
    public var queueCapacity = 32
    /// The Sparrow methods requests get unless they say otherwise.
    public var defaults = SparrowExtension()
    /// Tokens per step a draft model computes exact logits for (0: all; see `SketchedHead`).
    public var draftHeadCandidates = SketchedHead.defaultCandidates
    public var logLevel = Logger.Level.info

    public init(modelID: String, contextSize: Int) {
        self.modelID = modelID
        self.contextSize = contextSize
    }
}

/// An OpenAI-compatible HTTP server over one model: chat and text completions (streamed as
/// server-sent events or whole), models, health, tokenize and detokenize, and Prometheus
/// metrics. Generations run on an `InferenceScheduler`.
public final class OpenAIServer: Sendable {
    public let configuration: ServerConfiguration
    private let model: LanguageModel
    private let scheduler: InferenceScheduler
    private let planner: GenerationPlanner
    private let metrics: ServerMetrics
    private let created = Int(Date().timeIntervalSince1970)
    /// Request bodies past this are refused (a context of text is far smaller).
    private static let largestBody = 16 << 20

    /// - Parameters:
    ///   - draftModel: drafts for requests that ask for `sparrow.draft`.
    ///   - sparsity: the sidecar requests that ask for `sparrow.sparsity` use.
    ///   - modelSHA256: the model file's digest, which finds its calibrated GemFilter layer.
    public init(model: LanguageModel, draftModel: LanguageModel? = nil, sparsity: SparsitySidecar? = nil,
                modelSHA256: String, configuration: ServerConfiguration, pool: ThreadPool) throws {
        self.configuration = configuration
        self.model = model
        let metrics = ServerMetrics()
        self.metrics = metrics
        scheduler = try InferenceScheduler(model: model, draftModel: draftModel, draftHeadCandidates: configuration.draftHeadCandidates,
                                           contextSize: configuration.contextSize, slots: configuration.slots, queueCapacity: configuration.queueCapacity, pool: pool,
                                           onFinish: { metrics.recordGeneration($0, cancelled: $1) })
        planner = GenerationPlanner(model: model, contextSize: configuration.contextSize, defaults: configuration.defaults,
                                    hasDraftModel: draftModel != nil,
                                    sparsity: sparsity.map { SparsityMethods(model: model, sidecar: $0, pool: pool) },
                                    modelSHA256: modelSHA256)
        // Requests that ask for nothing must not fail on the server's own defaults.
        _ = try planner.plan(prompt: [0], fields: GenerationFields(), logprobs: nil)
    }

    deinit { scheduler.shutdown() }

    /// Serves until the task is cancelled or the process gets SIGINT or SIGTERM.
    /// - Parameter onRunning: called with the port once the server listens.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var logger = Logger(label: "sparrow.server")
        logger.logLevel = configuration.logLevel
        let port = configuration.port
        let app = Application(router: router(), configuration: .init(address: .hostname(configuration.host, port: port), serverName: "sparrow"),
                              onServerRunning: { await onRunning($0.localAddress?.port ?? port) }, logger: logger)
        defer { scheduler.shutdown() }
        try await app.runService()
    }

    private func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("v1/chat/completions") { request, context in
            await self.counted("chat_completions") { try await self.chatCompletion(request, context) }
        }
        router.post("v1/completions") { request, context in
            await self.counted("completions") { try await self.completion(request, context) }
        }
        router.get("v1/models") { _, _ in
            await self.counted("models") { self.json(self.modelList) }
        }
        router.get("v1/models/:id") { _, context in
            await self.counted("models") {
                let id = context.parameters.get("id") ?? ""
                try self.checkModel(id)
                return self.json(self.modelList.data[0])
            }
        }
        router.get("health") { _, _ in
            await self.counted("health") {
                let load = self.scheduler.load
                return self.json(Health(slotsIdle: load.slots - load.busy, slotsBusy: load.busy, queued: load.queued))
            }
        }
        router.post("tokenize") { request, context in
            await self.counted("tokenize") {
                let body = try await self.decode(TokenizeRequest.self, request, context)
                return self.json(TokenList(tokens: self.model.tokenizer.encode(body.content, addSpecial: body.addSpecial ?? false, parseSpecial: true)))
            }
        }
        router.post("detokenize") { request, context in
            await self.counted("detokenize") {
                let body = try await self.decode(DetokenizeRequest.self, request, context)
                let vocabulary = self.model.tokenizer.vocabularySize
                if let bad = body.tokens.first(where: { !(0..<vocabulary).contains($0) }) {
                    throw APIError.invalidRequest("token id \(bad) is outside the vocabulary 0..<\(vocabulary)")
                }
                return self.json(DetokenizedText(content: self.model.tokenizer.decode(body.tokens)))
            }
        }
        router.get("metrics") { _, _ in
            await self.counted("metrics") {
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                         body: .init(byteBuffer: ByteBuffer(string: self.metrics.exposition(load: self.scheduler.load))))
            }
        }
        return router
    }

    // MARK: Generation endpoints

    private func chatCompletion(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let body = try await decode(ChatCompletionRequest.self, request, context)
        try checkModel(body.fields.model)
        if body.topLogprobs != nil && body.logprobs != true { throw APIError.invalidRequest("top_logprobs needs logprobs: true") }
        let messages = body.messages.map { ChatMessage(role: $0.role, content: $0.content.text) }
        guard !messages.isEmpty else { throw APIError.invalidRequest("messages must not be empty") }
        let prompt: [Int]
        do {
            prompt = try model.chatPromptTokens(messages)
        } catch {
            throw APIError.invalidRequest("the chat template cannot render these messages: \(error)")
        }
        let plan = try planner.plan(prompt: prompt, fields: body.fields, logprobs: body.logprobs == true ? body.topLogprobs ?? 0 : nil)
        let format = ChatFormat(context: responseContext(idPrefix: "chatcmpl", plan))
        return try await respond(plan, format: format, start: start)
    }

    private func completion(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let body = try await decode(CompletionRequest.self, request, context)
        try checkModel(body.fields.model)
        if body.echo == true { throw APIError.invalidRequest("echo is not supported") }
        let prompt: [Int]
        switch body.prompt {
        case .text(let text): prompt = model.promptTokens(text)
        case .tokens(let tokens): prompt = tokens
        }
        let plan = try planner.plan(prompt: prompt, fields: body.fields, logprobs: body.logprobs)
        let format = CompletionFormat(context: responseContext(idPrefix: "cmpl", plan))
        return try await respond(plan, format: format, start: start)
    }

    /// Queues the plan and answers with the whole result, or streams it as server-sent events.
    private func respond(_ plan: GenerationPlanner.Plan, format: some ResponseFormat, start: ContinuousClock.Instant) async throws -> Response {
        let job: InferenceJob
        do {
            job = try scheduler.submit(plan.request)
        } catch {
            throw APIError.busy
        }
        guard plan.stream else {
            var tokens: [GeneratedToken] = []
            for await event in job.events {
                switch event {
                case .progress(_, let new): tokens += new
                case .finished(let result):
                    metrics.recordRequest(seconds: Self.seconds(since: start))
                    return json(format.response(result, tokens: tokens))
                case .failed(let message): throw APIError.server(message)
                }
            }
            throw APIError.server("the generation ended without a result")
        }
        let metrics = self.metrics
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: ResponseBody { writer in
            // Whatever ends the stream early (the client went away and a write failed) frees the slot.
            defer { job.cancel() }
            func send(_ value: some Encodable) async throws {
                try await writer.write(ByteBuffer(string: "data: " + String(decoding: try Self.encoder.encode(value), as: UTF8.self) + "\n\n"))
            }
            if let opening = format.openingChunk() { try await send(opening) }
            var generatedText = ""
            for await event in job.events {
                switch event {
                case .progress(let text, let tokens):
                    try await send(format.chunk(text: text, tokens: tokens, textOffset: generatedText.utf8.count))
                    generatedText += text
                case .finished(let result):
                    try await send(format.finalChunk(result))
                    if plan.includeUsage { try await send(format.usageChunk(result)) }
                    metrics.recordRequest(seconds: Self.seconds(since: start))
                case .failed(let message):
                    try await send(APIError.server(message))
                }
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        })
    }

    // MARK: Helpers

    private func responseContext(idPrefix: String, _ plan: GenerationPlanner.Plan) -> ResponseContext {
        ResponseContext(id: "\(idPrefix)-\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())",
                        created: Int(Date().timeIntervalSince1970), model: configuration.modelID,
                        tokenizer: model.tokenizer, logprobs: plan.request.options.logprobs)
    }

    private var modelList: ModelList {
        ModelList(data: [ModelList.Model(id: configuration.modelID, created: created, meta: ModelList.Meta(
            contextSize: configuration.contextSize, trainedContextSize: model.config.trainedContextLength,
            vocabularySize: model.tokenizer.vocabularySize, fileBytes: model.file.fileSize))])
    }

    /// Clients may name the model by its id or its file name; other names are refused.
    private func checkModel(_ name: String?) throws {
        guard let name else { return }
        let file = URL(fileURLWithPath: model.file.path).lastPathComponent
        let names = [configuration.modelID, file, String(file.dropLast(file.hasSuffix(".gguf") ? 5 : 0))]
        if !names.contains(name) { throw APIError.modelNotFound(name, served: configuration.modelID) }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: BasicRequestContext) async throws -> T {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.largestBody)
        } catch {
            throw APIError(status: .contentTooLarge, message: "the request body is larger than \(Self.largestBody) bytes", type: "invalid_request_error", code: nil)
        }
        let data = Data(buffer: body)
        guard String(validating: data, as: UTF8.self) != nil else { throw APIError.invalidRequest("the request body is not valid UTF-8") }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw APIError(decoding: error)
        }
    }

    /// Runs a handler, turning thrown errors into OpenAI-style error responses, and counts
    /// the request by its status.
    private func counted(_ endpoint: String, _ handler: () async throws -> Response) async -> Response {
        let response: Response
        do {
            response = try await handler()
        } catch let error as APIError {
            response = json(error, status: error.status)
        } catch {
            response = json(APIError.server("\(error)"), status: .internalServerError)
        }
        metrics.countRequest(endpoint: endpoint, status: response.status.code)
        return response
    }

    private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? Self.encoder.encode(value)) ?? Data(#"{"error":{"message":"the response could not be encoded"}}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
