import AsyncHTTPClient
import Foundation
import NIOCore
import SparrowEngine
import SparrowKernels
import SparrowServer
import SparrowTestSupport

/// The model every server test serves, loaded once.
enum Served {
    static let name = "smollm2-135m"
    static let model = Result { try catalogModel(name) }
    static let pool = ThreadPool(threadCount: ProcessInfo.processInfo.activeProcessorCount)
}

/// A response read whole.
struct HTTPReply {
    let status: Int
    let body: Data

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    var text: String { String(decoding: body, as: UTF8.self) }
    /// The OpenAI error message, for failed requests.
    var errorMessage: String? { (json["error"] as? [String: Any])?["message"] as? String }
}

/// A client of a server running in this process on a free loopback port.
struct ServerClient {
    let http: HTTPClient
    let base: String

    func get(_ path: String) async throws -> HTTPReply {
        try await send(HTTPClientRequest(url: base + path))
    }

    func post(_ path: String, _ json: String) async throws -> HTTPReply {
        try await send(postRequest(path, ByteBuffer(string: json)))
    }

    /// A body of raw bytes (which need not be UTF-8).
    func post(_ path: String, bytes: [UInt8]) async throws -> HTTPReply {
        try await send(postRequest(path, ByteBuffer(bytes: bytes)))
    }

    func post(_ path: String, _ object: [String: Any]) async throws -> HTTPReply {
        try await post(path, String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    /// The `data:` payloads of a streamed response, up to and including `[DONE]`; `onEvent`
    /// sees each as it arrives and returns false to stop reading (dropping the connection).
    func stream(_ path: String, _ object: [String: Any], onEvent: (String) -> Bool = { _ in true }) async throws -> (status: Int, events: [String]) {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        let response = try await http.execute(postRequest(path, ByteBuffer(string: body)), timeout: .seconds(120))
        var events: [String] = [], pending = ""
        for try await buffer in response.body {
            pending += String(buffer: buffer)
            while let end = pending.range(of: "\n\n") {
                let event = String(pending[..<end.lowerBound])
                pending.removeSubrange(..<end.upperBound)
                guard event.hasPrefix("data: ") else { continue }
                let payload = String(event.dropFirst(6))
                events.append(payload)
                if !onEvent(payload) { return (Int(response.status.code), events) }
            }
        }
        return (Int(response.status.code), events)
    }

    /// The server's load, from /health.
    func health() async throws -> (idle: Int, busy: Int, queued: Int) {
        let json = try await get("/health").json
        return (json["slots_idle"] as? Int ?? -1, json["slots_busy"] as? Int ?? -1, json["queued"] as? Int ?? -1)
    }

    /// Polls /health until `condition` holds; false after `seconds`.
    func waitForLoad(seconds: Double = 20, _ condition: ((idle: Int, busy: Int, queued: Int)) -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(try await health()) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// A metric's value from /metrics (0 when absent).
    func metric(_ name: String) async throws -> Double {
        let line = try await get("/metrics").text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    private func postRequest(_ path: String, _ body: ByteBuffer) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(body)
        return request
    }

    private func send(_ request: HTTPClientRequest) async throws -> HTTPReply {
        let response = try await http.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 1 << 24)
        return HTTPReply(status: Int(response.status.code), body: Data(buffer: body))
    }
}

/// Runs `body` against a fresh server over the shared model, then stops it.
func withServer(slots: Int = 2, queue: Int = 4, contextSize: Int = 512, sparsity: SparsitySidecar? = nil,
                _ body: (ServerClient) async throws -> Void) async throws {
    var configuration = ServerConfiguration(modelID: Served.name, contextSize: contextSize)
    configuration.port = 0
    configuration.slots = slots
    configuration.queueCapacity = queue
    // Stopping by cancellation logs the connections it cuts as errors.
    configuration.logLevel = .critical
    let server = try OpenAIServer(model: try Served.model.get(), sparsity: sparsity, modelSHA256: ModelCatalog.model(named: Served.name)!.sha256,
                                  configuration: configuration, pool: Served.pool)
    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let running = Task { try await server.run { portContinuation.yield($0) } }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else { throw ModelError("the server did not start") }
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
        try await body(ServerClient(http: http, base: "http://127.0.0.1:\(port)"))
    } catch {
        try? await http.shutdown()
        running.cancel()
        _ = await running.result
        throw error
    }
    try await http.shutdown()
    running.cancel()
    _ = await running.result
}

/// A chat request body.
func chatBody(_ content: String, maxTokens: Int = 24, extra: [String: Any] = [:]) -> [String: Any] {
    ["model": Served.name, "messages": [["role": "user", "content": content]], "max_tokens": maxTokens, "temperature": 0]
        .merging(extra) { _, new in new }
}

/// The assistant's text in a chat completion.
func chatContent(_ json: [String: Any]) -> String? {
    ((json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
}

func finishReason(_ json: [String: Any]) -> String? {
    (json["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String
}

/// A streamed chunk's parsed JSON.
func chunkJSON(_ payload: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] ?? [:]
}
