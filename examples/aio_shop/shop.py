"""An ordinary aiohttp service: nothing in it knows about simnet (docs/aio.md's example)."""

import asyncio

from aiohttp import web


async def price(request: web.Request) -> web.Response:
    return web.json_response({"item": request.match_info["item"], "price": 42})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/price/{item}", price)
    return app


async def serve(port: int = 8080) -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    await asyncio.Event().wait()  # serve until cancelled
