"""A TCP proxy to put between a client and a real server, so a test can take the server away.

`cut` closes every connection through it and refuses new ones, as a server that went down
would; `restore` accepts connections again on the same port. `pause` holds every byte in
both directions without closing anything, as a server that hangs would; `resume` lets them
through again. Threads, not asyncio, so the
client under test keeps its own threads and blocking calls.
"""

from __future__ import annotations

import socket
import threading

_CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to (`target_host`, `target_port`)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self.connections = 0  # accepted since start: shows traffic really went through
        self._flowing = threading.Event()
        self._flowing.set()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuses new connections and kills the open ones mid-stream."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._sockets = self._sockets, set()
        if listener is not None:
            _close(listener)
        for sock in open_sockets:
            _close(sock)

    def restore(self) -> None:
        self.start()

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self.resume()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # the listener was closed by cut()
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            if not self._track(client, upstream, listener):
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _track(self, client: socket.socket, upstream: socket.socket,
               listener: socket.socket) -> bool:
        """Registers a new pair, unless a cut came in between: then it is closed at once."""
        with self._lock:
            if self._listener is listener:
                self._sockets.update((client, upstream))
                self.connections += 1
                return True
        _close(client)
        _close(upstream)
        return False

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._sockets.difference_update((source, sink))
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    """Shuts down before closing, so a thread blocked in recv on it wakes up."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
