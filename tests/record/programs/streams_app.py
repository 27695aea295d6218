"""A plain asyncio-streams HTTP server (GET -> a fixed body, keep-alive), recorded by the tests.

`BODY` may be overridden by the environment (SIMNET_TEST_BODY): a program changed after recording.
"""

import asyncio
import os
import sys

BODY = os.environ.get("SIMNET_TEST_BODY", "hello from asyncio\n").encode()

async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            head_out = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n" % len(BODY)
            writer.write(head_out + BODY)
            await writer.drain()
            if b"connection: close" in head.lower():
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()

async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
