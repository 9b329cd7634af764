#!/usr/bin/env python3
"""nginx mail's mandatory auth_http, answered for bench/run: every login is accepted and sent
to the sink (Auth-Server/Auth-Port). nginx asks once per session over HTTP/1.0 (a new
connection each time), so this is an asyncio server rather than http.server, whose thread per
request would cost more than the nginx work being measured.

usage: authhttp.py LISTEN_PORT BACKEND_PORT READY_FILE
"""
import asyncio
import os
import signal
import sys


def main() -> None:
    port, backend, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    reply = (
        "HTTP/1.0 200 OK\r\n"
        "Auth-Status: OK\r\n"
        "Auth-Server: 127.0.0.1\r\n"
        f"Auth-Port: {backend}\r\n"
        "\r\n"
    ).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        with open(ready + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(ready + ".tmp", ready)
        async with server:
            await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
