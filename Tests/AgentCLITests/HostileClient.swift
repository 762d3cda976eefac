import Foundation
import HTTPServer
import Synchronization
import TestSupport

/// A client that attacks an agent until stopped, as the chaos run's hostile neighbour:
/// pipeliners that never read (four held at a time), bursts of unauthenticated writes,
/// and a body dripper. It counts the 401s it was answered.
final class HostileClient: Sendable {
    private let port: UInt16
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Unauthenticated requests answered 401.
    let refused = Atomic<Int>(0)
    /// Rounds of attack made.
    let rounds = Atomic<Int>(0)

    init(port: UInt16) { self.port = port }

    func start() {
        Thread { [self] in
            attack()
            finished.signal()
        }.start()
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        finished.wait()
    }

    private func attack() {
        var pipeliners: [BlockingHTTPClient] = []
        var dripper: BlockingHTTPClient?
        let write = "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        while !stopping.load(ordering: .acquiring) {
            if let client = try? BlockingHTTPClient(port: port) {
                try? client.send(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 500))
                pipeliners.append(client)
                if pipeliners.count > 4 { pipeliners.removeFirst() }
            }
            if let client = try? BlockingHTTPClient(port: port) {
                try? client.send(String(repeating: write, count: 100))
                for _ in 0..<100 {
                    guard let response = try? client.readResponse() else { break }
                    if response.status == 401 { refused.add(1, ordering: .relaxed) }
                }
            }
            if let current = dripper {
                do { try current.send("a") } catch { dripper = nil }
            } else {
                dripper = try? BlockingHTTPClient(port: port)
                try? dripper?.send(
                    "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
                )
            }
            rounds.add(1, ordering: .relaxed)
            usleep(50_000)
        }
    }
}
