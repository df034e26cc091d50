import NIOCore

// The API handler's two timers: the idle timeout (a connection with nothing in flight) and the
// send check (a client that stopped reading). Both run on the connection's event loop.
extension APICallHandler {
    func cancelChecks() {
        idleCheck?.cancel()
        idleCheck = nil
        sendCheck?.cancel()
        sendCheck = nil
    }

    /// A client that stops reading would hold its response — and, through back-pressure, the
    /// upstream connection behind it — for ever (a slow-read attack, on either path). While the
    /// socket is not writable, every ``APICallFrontends/sendTimeout`` the bytes waiting for the
    /// client must have gone down; if not, the connection is closed (which also ends a router response).
    func scheduleSendCheck(_ context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        sendCheck = context.eventLoop.scheduleTask(in: frontends.sendTimeout) {
            let handler = handler.value
            handler.sendCheck = nil
            guard let context = handler.context, !context.channel.isWritable else { return }
            let buffered = handler.bufferedBytes(context)
            if buffered < handler.bufferedAtLastCheck {
                handler.bufferedAtLastCheck = buffered
                handler.scheduleSendCheck(context)
            } else {
                handler.abandonCurrent()
                handler.closeConnection(context)
            }
        }
    }

    func bufferedBytes(_ context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    func scheduleIdleCheck(at deadline: NIODeadline) {
        guard let context, let timeout = frontends.idleTimeout else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) {
            let handler = handler.value
            handler.idleCheck = nil
            guard let context = handler.context else { return }
            let now = NIODeadline.now()
            if handler.machine.state == .closed {
                handler.closeConnection(context)  // given up on, but still open: nothing will close it otherwise
            } else if !handler.machine.isIdle {
                handler.scheduleIdleCheck(at: now + timeout)
            } else if now - handler.lastActivity >= timeout {
                handler.closeConnection(context)
            } else {
                handler.scheduleIdleCheck(at: handler.lastActivity + timeout)
            }
        }
    }
}
