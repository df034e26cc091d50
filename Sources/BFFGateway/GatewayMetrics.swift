import BFFCore
import BFFForwarder
import BFFHummingbird
import Foundation
import Prometheus
import Synchronization

/// The gateway's Prometheus registry: ``BFFMetrics`` records into it as things happen; the
/// gauges (upstream pools, the revocation queue, the build) are read when `/metrics` is scraped.
/// One registry per gateway (never the process-wide default), so several gateways in one process
/// (tests) keep their numbers apart.
final class GatewayMetrics: Sendable {
    /// The gateway's version, as `bff_build_info{version}` reports it.
    static let version = "0.2.0"

    let registry: PrometheusCollectorRegistry
    let metrics: BFFMetrics
    private let buildInfo: Gauge
    private let revocationQueue: Gauge
    /// The pool gauges the last scrape set (by name and labels): a series no longer set (its
    /// frontend or route was removed by a reload) is unregistered instead of left frozen.
    private let poolGauges = Mutex<[String: Gauge]>([:])

    /// With `recording` false (`BFF_METRICS=false`, for benchmarks) nothing is recorded and
    /// `/metrics` shows the build only.
    init(recording: Bool = true) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Buckets for a gateway: most answers take milliseconds; refreshes and slow upstreams, seconds.
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
        ]
        self.registry = registry
        self.metrics = recording ? BFFMetrics(factory: factory) : .disabled
        self.buildInfo = registry.makeGauge(
            name: "bff_build_info", labels: [("version", Self.version)], help: "1, labelled with the gateway's version")
        self.revocationQueue = registry.makeGauge(
            name: "bff_revocation_queue_depth", help: "Refresh tokens waiting to be revoked at the IdP")
        buildInfo.set(1.0)
    }

    /// The Prometheus text for a scrape: the gauges read now (the pools of every frontend's
    /// routes, labelled with the frontend when there are several; the revocation queues of all of
    /// them together), then everything.
    func scrape(frontends: [(name: String, bff: BFF)], forwarder: NIOUpstream?) -> [UInt8] {
        revocationQueue.set(Double(frontends.reduce(0) { $0 + $1.bff.revoker.queueDepth }))
        var current: [String: Gauge] = [:]
        func gauge(_ name: String, _ labels: [(String, String)]) -> Gauge {
            let made = self.gauge(name, labels)
            current[name + labels.map { "|" + $0.0 + "=" + $0.1 }.joined()] = made
            return made
        }
        if let forwarder {
            let byUpstream = forwarder.statisticsByUpstream
            for (name, bff) in frontends {
                let frontend: [(String, String)] = name.isEmpty ? [] : [("frontend", name)]
                for route in bff.configuration.apis where !route.websocket {
                    guard let upstream = Self.hostAndPort(route.upstream) else { continue }
                    let counts = byUpstream[upstream]
                    gauge("bff_upstream_connections", frontend + [("api", route.path), ("state", "idle")])
                        .set(Double(counts?.idle ?? 0))
                    gauge("bff_upstream_connections", frontend + [("api", route.path), ("state", "leased")])
                        .set(Double(counts?.leased ?? 0))
                    gauge("bff_upstream_waiters", frontend + [("api", route.path)]).set(Double(counts?.waiting ?? 0))
                }
            }
        }
        let stale = poolGauges.withLock { previous in
            defer { previous = current }
            return previous.filter { current[$0.key] == nil }.map(\.value)
        }
        for gauge in stale { registry.unregisterGauge(gauge) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }

    private func gauge(_ name: String, _ labels: [(String, String)]) -> Gauge {
        registry.makeGauge(
            name: name, labels: labels,
            help: name == "bff_upstream_waiters"
                ? "Calls waiting for a pooled connection to the api's upstream"
                : "Pooled connections to the api's upstream (shared by the routes of one upstream)")
    }

    /// `host:port` of an upstream URL, as the pools are keyed.
    static func hostAndPort(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let host = components.host else { return nil }
        let port = components.port ?? (components.scheme == "https" ? 443 : 80)
        return "\(host):\(port)"
    }
}
