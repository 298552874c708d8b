"""The socket `loopml serve` binds before start-up answers without Nagle's delay.

asyncio turns Nagle's algorithm off (TCP_NODELAY) only on accepted sockets whose protocol says TCP;
a listening socket made with protocol 0 let every response wait ~40 ms for the client's delayed ACK
(p50 48 ms against 2 ms, measured on the fraud model)."""

from __future__ import annotations

import socket
import threading

from loopml.serve import listen


def test_the_listening_socket_is_tcp_with_nodelay_and_so_are_its_connections() -> None:
    server = listen("127.0.0.1", 0)
    try:
        assert server.proto == socket.IPPROTO_TCP
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        server.listen(1)
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
        thread.start()
        with socket.create_connection(server.getsockname()[:2], timeout=5):
            thread.join(5)
        conn = accepted[0]
        assert conn.proto == socket.IPPROTO_TCP  # what asyncio checks before setting TCP_NODELAY
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        conn.close()
    finally:
        server.close()
