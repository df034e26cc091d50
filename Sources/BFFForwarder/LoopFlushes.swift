import NIOCore
import NIOPosix

/// Flushes put off to the end of the event loop's current round, then made in one pass over
/// every channel that asked for one.
///
/// Under load an event loop handles many ready sockets per wake-up. Flushing each API call's
/// upstream request and client response as soon as it is written wakes the peer (the upstream,
/// the client) once per call, and on loopback the wake-up, and the peer preempting this thread,
/// cost more than the write itself. Flushed after the loop has handled its ready sockets, each
/// peer finds several requests or responses per wake-up. Measured with `cpu_ab.py`, this took the
/// gateway's context switches from 1.04 to 0.78 per call and its throughput up by about a
/// fifth, GET and POST alike (see `Benchmarks/RESULTS.md`). Netty's `FlushConsolidationHandler`
/// does the same for one channel; this spans the channels of a loop.
///
/// The round ends in the same loop iteration (NIO runs the tasks queued so far, then this one,
/// before it waits for sockets again), so a flush is never held for later I/O. Called on the
/// channel's event loop (elsewhere it flushes at once). Code that closes a channel flushes it
/// directly first: a close fails writes that were not flushed.
public enum LoopFlushes {
    /// The channels waiting for one loop's flush. Kept per thread: an event loop's thread serves
    /// that one loop; a thread that drives several loops (tests with `EmbeddedEventLoop`s) gets a
    /// batch per loop in turn, each flushed by a task on its own loop.
    final class Batch: @unchecked Sendable {  // justified: used on its loop's thread only
        let eventLoop: any EventLoop
        private var waiting: [any Channel] = []
        private var flushing: [any Channel] = []
        private var scheduled = false

        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

        func add(_ channel: any Channel) {
            waiting.append(channel)
            guard !scheduled else { return }
            scheduled = true
            eventLoop.execute { self.flush() }
        }

        /// Flushes every channel that asked (a channel that asks while this runs is flushed by
        /// the next task).
        private func flush() {
            scheduled = false
            swap(&waiting, &flushing)
            for channel in flushing { channel.flush() }
            flushing.removeAll(keepingCapacity: true)
        }
    }

    private static let batches = ThreadSpecificVariable<Batch>()

    /// Flushes `channel` once its event loop (the current one) has handled its ready sockets.
    public static func flushSoon(_ channel: any Channel) {
        let eventLoop = channel.eventLoop
        // (Off the loop there is no round to join: flush as usual.)
        guard eventLoop.inEventLoop else {
            channel.flush()
            return
        }
        if let batch = batches.currentValue, batch.eventLoop === eventLoop {
            batch.add(channel)
            return
        }
        let batch = Batch(eventLoop: eventLoop)
        batches.currentValue = batch
        batch.add(channel)
    }
}
