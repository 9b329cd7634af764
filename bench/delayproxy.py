#!/usr/bin/env python3
"""delayproxy: a TCP forwarder adding a fixed one-way delay each way, for bench/relay-latency.sh
on kernels without sch_netem (tc ... netem).

usage: delayproxy.py LISTEN_HOST PORT TARGET_HOST TARGET_PORT DELAY_MS READY_FILE

Every chunk is passed on DELAY_MS after it arrived, in order, in both directions. A new
connection reaches the target only 3 x DELAY_MS after it was accepted: over a real path the
server's first bytes (an SMTP banner) reach the client 2 round trips after its SYN (SYN,
SYN-ACK, ACK, then the banner), and the client's accept here took no time. Runs until killed.
"""
import asyncio
import sys


async def pipe(reader, writer_fut, delay):
    """Copies reader to the writer (once connected), each chunk DELAY after it arrived."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        writer = await writer_fut
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((loop.time() + delay, None))
    await sender


async def serve(client_r, client_w, target, delay):
    loop = asyncio.get_running_loop()
    up_w = loop.create_future()

    async def connect():
        await asyncio.sleep(3 * delay)
        r, w = await asyncio.open_connection(*target)
        up_w.set_result(w)
        return r

    cw = loop.create_future()
    cw.set_result(client_w)
    try:
        conn = asyncio.create_task(connect())
        upward = asyncio.create_task(pipe(client_r, up_w, delay))
        up_r = await conn
        await asyncio.gather(upward, pipe(up_r, cw, delay))
    except (OSError, ConnectionError):
        pass
    finally:
        for fut in (up_w, cw):
            if fut.done() and not fut.exception():
                fut.result().close()
        if not up_w.done():
            up_w.cancel()
            client_w.close()


async def main():
    host, port, thost, tport, delay_ms, ready = sys.argv[1:7]
    delay = float(delay_ms) / 1000
    server = await asyncio.start_server(lambda r, w: serve(r, w, (thost, int(tport)), delay), host, int(port))
    with open(ready, "w") as f:
        f.write("ready\n")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
