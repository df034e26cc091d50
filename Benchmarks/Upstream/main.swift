// A minimal upstream for proxy benchmarks: answers every GET with a 1 KiB body, optionally after a
// delay (to model an upstream with latency, where the proxy's pool must not be the limit).
//
//   bff-bench-upstream --port 18091 --delay-ms 20
import Foundation
import Hummingbird
import NIOCore

let arguments = CommandLine.arguments
func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1])
    else {
        return fallback
    }
    return value
}
let port = option("--port", 18091)
let delay = option("--delay-ms", 0)
let body = ByteBuffer(string: String(repeating: "x", count: 1024))

let router = Router()
for path: RouterPath in ["/", "**"] {
    router.get(path) { _, _ in
        if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: body))
    }
}
let app = Application(
    router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil))
try await app.runService()
