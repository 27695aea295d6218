"""A small aiohttp service, recorded by the tests and by traces/aio/record.sh."""

import asyncio
import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello from aiohttp\n")


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


async def serve(port: int) -> None:
    app = web.Application()
    app.add_routes([web.get("/", hello), web.post("/echo", echo)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    print("listening", server.sockets[0].getsockname()[1], flush=True)  # type: ignore[attr-defined]
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
