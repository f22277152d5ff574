import Foundation
import SparrowEngine
import SparrowServer
import SparrowTestSupport
import Testing

/// The server over loopback with a real HTTP client, on SmolLM2-135M.
@Suite struct OpenAIServerTests {
    /// Greedy continuations go on for hundreds of tokens without an end token.
    static let countingPrompt = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"

    @Test func chatCompletionIsTheGreedyReplyWithUsage() async throws {
        let model = try Served.model.get()
        // The reference: the engine's own generator on a fresh session.
        let prompt = try model.chatPromptTokens([ChatMessage(role: "user", content: "Name three colours.")])
        var options = GenerationOptions()
        options.maxTokens = 24
        let expected = try Generator(tokenizer: model.tokenizer, session: Session(model: model.transformer, contextSize: 512, pool: Served.pool))
            .generate(prompt: prompt, options: options)

        try await withServer { client in
            let reply = try await client.post("/v1/chat/completions", chatBody("Name three colours."))
            #expect(reply.status == 200)
            let json = reply.json
            #expect(json["object"] as? String == "chat.completion")
            #expect(chatContent(json) == expected.text)
            #expect(finishReason(json) == expected.finishReason.rawValue)
            let usage = json["usage"] as? [String: Int]
            #expect(usage?["prompt_tokens"] == prompt.count)
            #expect(usage?["completion_tokens"] == expected.generatedTokens.count)
            #expect(usage?["total_tokens"] == prompt.count + expected.generatedTokens.count)
        }
    }

    @Test func streamedChatConcatenatesToTheWholeReply() async throws {
        try await withServer { client in
            let whole = try await client.post("/v1/chat/completions", chatBody("Tell me about the sea.", maxTokens: 40)).json
            let (status, events) = try await client.stream("/v1/chat/completions",
                                                           chatBody("Tell me about the sea.", maxTokens: 40, extra: ["stream": true, "stream_options": ["include_usage": true]]))
            #expect(status == 200)
            #expect(events.last == "[DONE]")
            let chunks = events.dropLast().map(chunkJSON)
            #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
            let choices = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }
            let deltas = choices.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }
            #expect(deltas.joined() == chatContent(whole))
            #expect((choices.first?["delta"] as? [String: Any])?["role"] as? String == "assistant")
            #expect(choices.last?["finish_reason"] as? String == finishReason(whole))
            // The usage chunk comes last, with no choices.
            #expect((chunks.last?["choices"] as? [Any])?.isEmpty == true)
            #expect((chunks.last?["usage"] as? [String: Int]) == (whole["usage"] as? [String: Int]))
        }
    }

    @Test func completionsStreamedAndWholeAgree() async throws {
        try await withServer { client in
            let body: [String: Any] = ["prompt": "It is a truth universally acknowledged", "max_tokens": 20, "temperature": 0]
            let whole = try await client.post("/v1/completions", body).json
            let text = (whole["choices"] as? [[String: Any]])?.first?["text"] as? String
            #expect(text?.isEmpty == false)
            let (_, events) = try await client.stream("/v1/completions", body.merging(["stream": true]) { _, new in new })
            let pieces = events.dropLast().map(chunkJSON).compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }
            #expect(pieces.joined() == text)
        }
    }

    @Test func stopStringCutsTheReply() async throws {
        try await withServer { client in
            let body: [String: Any] = ["prompt": Self.countingPrompt, "max_tokens": 30, "temperature": 0]
            let full = try await client.post("/v1/completions", body).json
            let text = try #require((full["choices"] as? [[String: Any]])?.first?["text"] as? String)
            let stop = " 14,"
            let cut = try #require(text.range(of: stop))
            let stopped = try await client.post("/v1/completions", body.merging(["stop": [stop, "never appears"]]) { _, new in new }).json
            let choice = (stopped["choices"] as? [[String: Any]])?.first
            #expect(choice?["text"] as? String == String(text[..<cut.lowerBound]))
            #expect(choice?["finish_reason"] as? String == "stop")
            // The same through the stream.
            let (_, events) = try await client.stream("/v1/completions", body.merging(["stop": stop, "stream": true]) { _, new in new })
            let pieces = events.dropLast().map(chunkJSON).compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }
            #expect(pieces.joined() == String(text[..<cut.lowerBound]))
        }
    }

    @Test func concurrentRequestsMatchSequentialGreedy() async throws {
        let questions = ["What is rain?", "Write a haiku about autumn.", "List two animals.", "Why is the sky blue?"]
        var sequential: [String] = []
        try await withServer(slots: 1) { client in
            for question in questions {
                sequential.append(chatContent(try await client.post("/v1/chat/completions", chatBody(question, maxTokens: 32)).json) ?? "")
            }
        }
        try await withServer(slots: questions.count) { client in
            let concurrent = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for (i, question) in questions.enumerated() {
                    group.addTask { (i, chatContent(try await client.post("/v1/chat/completions", chatBody(question, maxTokens: 32)).json) ?? "") }
                }
                var replies = [String](repeating: "", count: questions.count)
                for try await (i, reply) in group { replies[i] = reply }
                return replies
            }
            #expect(concurrent == sequential)
            #expect(!sequential.contains(""))
        }
    }

    @Test func droppedStreamFreesItsSlotAtOnce() async throws {
        try await withServer(slots: 1) { client in
            var received = 0
            let (status, _) = try await client.stream("/v1/completions", ["prompt": Self.countingPrompt, "max_tokens": 480, "temperature": 0, "stream": true]) { _ in
                received += 1
                return received < 3
            }
            #expect(status == 200)
            // Freed long before the 480 tokens would have been generated, with few made after.
            #expect(try await client.waitForLoad(seconds: 10) { $0.busy == 0 && $0.idle == 1 })
            #expect(try await client.metric("sparrow_generations_cancelled_total") == 1)
            #expect(try await client.metric("sparrow_generated_tokens_total") < 240)
            let next = try await client.post("/v1/completions", ["prompt": "Hello", "max_tokens": 4, "temperature": 0])
            #expect(next.status == 200)
        }
    }

    @Test func fullQueueAnswers503AndTheServerRecovers() async throws {
        try await withServer(slots: 1, queue: 1) { client in
            // A long stream holds the only slot until the test drops it.
            let holder = Task {
                try await client.stream("/v1/completions", ["prompt": Self.countingPrompt, "max_tokens": 480, "temperature": 0, "stream": true]) { _ in
                    !Task.isCancelled
                }
            }
            #expect(try await client.waitForLoad { $0.busy == 1 })
            let queued = Task { try await client.post("/v1/completions", ["prompt": "Hello", "max_tokens": 4, "temperature": 0]) }
            #expect(try await client.waitForLoad { $0.queued == 1 })
            let refused = try await client.post("/v1/completions", ["prompt": "Hello", "max_tokens": 4, "temperature": 0])
            #expect(refused.status == 503)
            #expect(refused.errorMessage?.contains("busy") == true)
            holder.cancel()
            _ = await holder.result
            #expect(try await queued.value.status == 200)
        }
    }

    /// A slot's next request reuses the prefix its cache holds, unless it says cache_prompt false.
    @Test func cachedPrefixIsReusedUnlessRefused() async throws {
        try await withServer(slots: 1) { client in
            func cached(_ extra: [String: Any]) async throws -> Int? {
                let json = try await client.post("/v1/chat/completions", chatBody("Name a river.", maxTokens: 4, extra: extra)).json
                return ((json["sparrow"] as? [String: Any])?["timings"] as? [String: Any])?["cache_n"] as? Int
            }
            #expect(try await cached([:]) == 0)
            let prompt = try Served.model.get().chatPromptTokens([ChatMessage(role: "user", content: "Name a river.")])
            #expect(try await cached([:]) == prompt.count - 1)
            #expect(try await cached(["cache_prompt": false]) == 0)
        }
    }

    /// Each bad request gets a 4xx with an OpenAI error body, and the server keeps serving.
    @Test func badRequestsGetClearErrors() async throws {
        let long = String(repeating: "the quick brown fox jumps over the lazy dog ", count: 80)
        let cases: [(body: String, status: Int, message: String)] = [
            ("{\"messages\": [", 400, "not valid JSON"),
            (#"{"messages": "hello"}"#, 400, "'messages' has the wrong type"),
            (#"{"messages": [{"role": "user", "content": "hi"}], "temperature": "warm"}"#, 400, "'temperature' has the wrong type"),
            (#"{"messages": [{"role": "user"}]}"#, 400, "missing required field 'messages[0].content'"),
            (#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}"#, 400, "exceed the context of 512 tokens"),
            (#"{"messages": [{"role": "user", "content": "\#(long)"}]}"#, 400, "context holds 512"),
            (#"{"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}"#, 404, "'gpt-4o' does not exist"),
            (#"{"messages": [{"role": "user", "content": "hi"}], "n": 3}"#, 400, "n = 1"),
            (#"{"messages": [{"role": "user", "content": "hi"}], "top_p": 0}"#, 400, "top_p"),
            (#"{"messages": [{"role": "user", "content": "hi"}], "sparrow": {"draft": true}}"#, 400, "--draft-model"),
            (#"{"messages": [{"role": "user", "content": "hi"}], "sparrow": {"gemfilter": "on"}}"#, 400, "'sparrow.gemfilter' has the wrong type"),
        ]
        try await withServer { client in
            for (body, status, message) in cases {
                let reply = try await client.post("/v1/chat/completions", body)
                #expect(reply.status == status, "\(body)")
                #expect(reply.errorMessage?.contains(message) == true, "\(body): \(reply.text)")
                #expect((reply.json["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
            }
            #expect(try await client.post("/v1/completions", #"{"prompt": "hi", "max_tokens": 0}"#).status == 400)
            #expect(try await client.post("/detokenize", #"{"tokens": [1, 99999999]}"#).status == 400)
            let invalidUTF8 = try await client.post("/v1/chat/completions", bytes: Array(#"{"messages": [{"role": "user", "content": ""#.utf8) + [0xFF, 0xFE] + Array(#""}]}"#.utf8))
            #expect(invalidUTF8.status == 400 && invalidUTF8.errorMessage == "the request body is not valid UTF-8")
            #expect(try await client.post("/v1/chat/completions", chatBody("Still there?", maxTokens: 4)).status == 200)
            #expect(try await client.metric("sparrow_requests_total{endpoint=\"chat_completions\",status=\"400\"}") == 11)
        }
    }

    @Test func tokenizeDetokenizeAndModels() async throws {
        let model = try Served.model.get()
        let text = "Mr. Darcy walked in — naïvely, at 10:30."
        try await withServer { client in
            let tokens = try #require(try await client.post("/tokenize", ["content": text]).json["tokens"] as? [Int])
            #expect(tokens == model.tokenizer.encode(text, addSpecial: false))
            #expect(try await client.post("/detokenize", ["tokens": tokens]).json["content"] as? String == text)
            let models = try await client.get("/v1/models").json
            let ids = (models["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(ids == [Served.name])
            #expect(try await client.get("/v1/models/\(Served.name)").json["id"] as? String == Served.name)
            #expect(try await client.get("/v1/models/gpt-4o").status == 404)
        }
    }

    @Test func logprobsDescribeTheGreedyChoices() async throws {
        try await withServer { client in
            let json = try await client.post("/v1/chat/completions", chatBody("Say hello.", maxTokens: 8, extra: ["logprobs": true, "top_logprobs": 3])).json
            let choice = try #require((json["choices"] as? [[String: Any]])?.first)
            let entries = try #require((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
            #expect(entries.count == (json["usage"] as? [String: Int])?["completion_tokens"])
            for entry in entries {
                let chosen = try #require(entry["logprob"] as? Double)
                let top = try #require(entry["top_logprobs"] as? [[String: Any]]).compactMap { $0["logprob"] as? Double }
                #expect(top.count == 3)
                #expect(top == top.sorted(by: >))
                // Greedy picks the most likely token.
                #expect(abs(chosen - top[0]) < 1e-5 && chosen <= 0)
            }
            #expect(entries.compactMap { $0["token"] as? String }.joined() == chatContent(json))
        }
    }

    /// The extension switches methods per request: lookup drafting keeps greedy's tokens and
    /// reports its drafts; GemFilter prefills only the tokens it keeps.
    @Test func sparrowExtensionRunsTheMethods() async throws {
        try await withServer { client in
            let body: [String: Any] = ["prompt": Self.countingPrompt, "max_tokens": 40, "temperature": 0]
            let plain = try await client.post("/v1/completions", body).json
            let drafted = try await client.post("/v1/completions", body.merging(["sparrow": ["lookup": ["draft_max": 4]]]) { _, new in new }).json
            #expect(drafted["choices"] as? NSArray == plain["choices"] as? NSArray)
            let speculation = try #require((drafted["sparrow"] as? [String: Any])?["speculation"] as? [String: Int])
            #expect(speculation["drafted"]! > 0 && speculation["accepted"]! > 0)
            #expect((plain["sparrow"] as? [String: Any])?["speculation"] == nil)

            let filtered = try await client.post("/v1/completions", body.merging(["sparrow": ["gemfilter": ["keep": 8]]]) { _, new in new }).json
            let timings = (filtered["sparrow"] as? [String: Any])?["timings"] as? [String: Any]
            #expect(timings?["kept_n"] as? Int == 8)
        }
    }

    /// `sparrow.sparsity` reaches the method, the candidate head's settings included: with a
    /// full-rank preview (the head itself, re-quantised) half the vocabulary as candidates holds
    /// every step's likeliest token, so the greedy reply is the dense one; a rank beyond the
    /// calibrated one, a server without a sidecar and a sidecar without a preview are refused.
    @Test func sparsitySettingsReachTheCandidateHead() async throws {
        let model = try Served.model.get(), d = model.config.embeddingSize
        var identity = [Float](repeating: 0, count: d * d)
        for i in 0..<d { identity[i * d + i] = 1 }
        let withHead = try selectEverythingSidecar(model, sha256: "test", head: (identity, identity, d))
        let body: [String: Any] = ["prompt": Self.countingPrompt, "max_tokens": 24, "temperature": 0]
        func asking(_ sparsity: [String: Any]) -> [String: Any] { body.merging(["sparrow": ["sparsity": sparsity]]) { _, new in new } }
        let head: [String: Any] = ["rule": "teal", "level": 0, "head_candidates": model.transformer.vocabularySize / 2, "head_rank": d]
        try await withServer(sparsity: withHead) { client in
            let plain = try await client.post("/v1/completions", body)
            let sparse = try await client.post("/v1/completions", asking(head))
            #expect(sparse.status == 200)
            #expect(sparse.json["choices"] as? NSArray == plain.json["choices"] as? NSArray)
            let tooWide = try await client.post("/v1/completions", asking(head.merging(["head_rank": d + 32]) { _, new in new }))
            #expect(tooWide.status == 400)
            #expect(tooWide.errorMessage?.contains("rank \(d + 32)") == true, "\(tooWide.errorMessage ?? "")")
            let uncalibratedUp = try await client.post("/v1/completions", asking(head.merging(["up_level": 0.3]) { _, new in new }))
            #expect(uncalibratedUp.status == 400)
            #expect(uncalibratedUp.errorMessage?.contains("not a calibrated level") == true, "\(uncalibratedUp.errorMessage ?? "")")
        }
        try await withServer(sparsity: try selectEverythingSidecar(model, sha256: "test")) { client in
            let old = try await client.post("/v1/completions", asking(head))
            #expect(old.status == 400)
            #expect(old.errorMessage?.contains("recalibrate") == true, "\(old.errorMessage ?? "")")
        }
        try await withServer { client in
            let none = try await client.post("/v1/completions", asking(head))
            #expect(none.status == 400)
            #expect(none.errorMessage?.contains("--sparsity") == true, "\(none.errorMessage ?? "")")
        }
    }

    @Test func metricsCountRequestsAndTokens() async throws {
        try await withServer { client in
            let reply = try await client.post("/v1/completions", ["prompt": "Hello", "max_tokens": 5, "temperature": 0])
            let generated = (reply.json["usage"] as? [String: Int])?["completion_tokens"] ?? -1
            #expect(try await client.metric("sparrow_requests_total{endpoint=\"completions\",status=\"200\"}") == 1)
            #expect(try await client.metric("sparrow_generated_tokens_total") == Double(generated))
            #expect(try await client.metric("sparrow_slots") == 2)
            #expect(try await client.metric("sparrow_queue_depth") == 0)
            #expect(try await client.metric("sparrow_generation_tokens_per_second") > 0)
        }
    }
}
