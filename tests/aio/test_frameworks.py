"""Real frameworks, unmodified, on the simulated stack: aiohttp (server and client), uvicorn
serving a Starlette app, httpx's AsyncClient, and TLS through asyncio's ssl= support."""

from __future__ import annotations

import asyncio
import ssl

import pytest

import simnet.aio as sa

aiohttp = pytest.importorskip("aiohttp")
web = pytest.importorskip("aiohttp.web")


def aiohttp_app() -> object:
    async def hello(request: object) -> object:
        name = request.match_info["name"]  # type: ignore[attr-defined]
        return web.Response(text=f"hello {name}")

    async def upload(request: object) -> object:
        body = await request.read()  # type: ignore[attr-defined]
        return web.json_response({"bytes": len(body)})

    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.router.add_post("/upload", upload)
    return app


async def serve_aiohttp(port: int = 8080) -> None:
    runner = web.AppRunner(aiohttp_app())
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", port)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def aiohttp_client_session() -> list[object]:
    sa.spawn(serve_aiohttp(), host="api")
    await asyncio.sleep(0.01)
    results: list[object] = []
    async with aiohttp.ClientSession() as session:
        for name in ("ada", "bob", "cy"):
            async with session.get(f"http://api:8080/hello/{name}") as response:
                results.append((response.status, await response.text()))
        async with session.post("http://api:8080/upload", data=b"x" * 300_000) as response:
            results.append(await response.json())
    return results


EXPECTED = [(200, "hello ada"), (200, "hello bob"), (200, "hello cy"), {"bytes": 300_000}]


def test_aiohttp_server_and_client() -> None:
    assert sa.run(aiohttp_client_session(), seed=1) == EXPECTED


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_aiohttp_under_loss_reordering_and_short_io(seed: int) -> None:
    assert sa.run(aiohttp_client_session(), seed=seed, loss=0.03, reorder=0.05, short_io=0.2) == EXPECTED


def test_aiohttp_is_deterministic_per_seed_including_headers() -> None:
    async def main() -> tuple[str, str]:
        sa.spawn(serve_aiohttp(), host="api")
        await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as session, session.get("http://api:8080/hello/x") as response:
            return response.headers["Date"], sa.network().format_segment_log()

    first = sa.run(main(), seed=5, loss=0.02, log_segments=True)
    assert first == sa.run(main(), seed=5, loss=0.02, log_segments=True)
    assert first[0] == "Thu, 01 Jan 2026 00:00:00 GMT"  # virtual wall clock from the epoch


def test_aiohttp_client_timeout_in_virtual_time_during_a_partition() -> None:
    faults = {"partitions": [{"a": "api", "b": "main", "start": 0.5, "end": 100}]}

    async def main() -> tuple[str, float]:
        sa.spawn(serve_aiohttp(), host="api")
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get("http://api:8080/hello/early") as response:
                first = await response.text()
            await asyncio.sleep(1)
            t0 = loop.time()
            with pytest.raises(asyncio.TimeoutError):
                async with session.get("http://api:8080/hello/late") as response:
                    await response.text()
            return first, loop.time() - t0

    first, waited = sa.run(main(), faults=faults)
    assert first == "hello early"
    assert 5 <= waited < 6  # aiohttp rounds timeouts of 5 s and more up to a whole second


def test_tls_through_asyncio_ssl() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("secure.example").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"you said " + await reader.readline())
        await writer.drain()
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 443, ssl=server_context)
        await server.serve_forever()

    async def main() -> tuple[bytes, str]:
        sa.spawn(serve(), host="secure.example")
        await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection("secure.example", 443, ssl=client_context)
        writer.write(b"secret\n")
        answer = await reader.readline()
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return answer, version

    answer, version = sa.run(main(), seed=3, loss=0.05)
    assert answer == b"you said secret\n"
    assert version.startswith("TLS")


def test_uvicorn_serving_starlette_with_httpx_client() -> None:
    uvicorn = pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("starlette on simnet")

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"len": len(await request.body())})

    app = Starlette(routes=[Route("/", home), Route("/echo", echo, methods=["POST"])])
    config = uvicorn.Config(app, host="0.0.0.0", port=8000, loop="none", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)

    async def main() -> list[object]:
        serving = sa.spawn(server.serve(), host="web")
        while not server.started:
            await asyncio.sleep(0.01)
        out: list[object] = []
        async with httpx.AsyncClient(base_url="http://web:8000") as client:
            for _ in range(3):
                response = await client.get("/")
                out.append((response.status_code, response.text))
            response = await client.post("/echo", content=b"y" * 100_000)
            out.append(response.json())
        server.should_exit = True
        await serving
        return out

    result = sa.run(main(), seed=8, loss=0.02)
    assert result == [(200, "starlette on simnet")] * 3 + [{"len": 100_000}]


def test_httpx_against_aiohttp_connection_refused_and_retry() -> None:
    httpx = pytest.importorskip("httpx")

    async def main() -> tuple[str, int]:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("http://api:8080/hello/too-early")  # nothing listens yet
            sa.spawn(serve_aiohttp(), host="api")
            await asyncio.sleep(0.01)
            response = await client.get("http://api:8080/hello/now")
            return response.text, response.status_code

    async def top() -> tuple[str, int]:
        sa.address("api")
        return await main()

    assert sa.run(top()) == ("hello now", 200)
