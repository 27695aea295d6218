"""simnet.aio.run: unmodified asyncio programs on the simulated stack, in virtual time."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

import simnet.aio as sa
from simnet.kernel.network import DISTINCT_FD_BASE


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(b"echo " + line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def echo_server(port: int = 8080, host: str = "0.0.0.0") -> None:
    server = await asyncio.start_server(echo_handler, host, port)
    async with server:
        await server.serve_forever()


async def ask(host: str, port: int, lines: list[bytes]) -> list[bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    answers = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        answers.append(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return answers


def test_streams_echo_across_hosts() -> None:
    async def main() -> list[bytes]:
        sa.spawn(echo_server(), host="server")
        await asyncio.sleep(0)  # let the server listen
        return await ask("server", 8080, [b"one\n", b"two\n"])

    assert sa.run(main(), seed=1) == [b"echo one\n", b"echo two\n"]


def test_main_runs_on_host_main_and_hosts_get_addresses_in_order() -> None:
    async def main() -> tuple[str, str, str, str]:
        return sa.current_host_name(), sa.address("main"), sa.address("server"), sa.address("c1")

    assert sa.run(main()) == ("main", "10.0.0.1", "10.0.0.2", "10.0.0.3")


def test_pinned_addresses() -> None:
    async def main() -> tuple[str, list[bytes]]:
        sa.spawn(echo_server(), host="server")
        await asyncio.sleep(0)
        return sa.address("server"), await ask("10.0.0.10", 8080, [b"x\n"])

    assert sa.run(main(), hosts={"server": "10.0.0.10"}) == ("10.0.0.10", [b"echo x\n"])


def test_virtual_time_costs_no_wall_time() -> None:
    async def main() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        t0, wall0 = loop.time(), time.time()
        await asyncio.sleep(3600)
        return loop.time() - t0, time.time() - wall0, sa.network().now

    started = time.perf_counter()
    elapsed, wall_elapsed, now = sa.run(main())
    assert elapsed == 3600.0
    assert wall_elapsed == pytest.approx(3600.0)  # time.time() reads virtual time too
    assert now == pytest.approx(3600.0)
    assert time.perf_counter() - started < 5


def test_time_time_starts_at_a_fixed_epoch_and_sleep_blocks_in_virtual_time() -> None:
    async def main() -> tuple[float, float]:
        start = time.time()
        time.sleep(2.5)  # a blocking sleep: the program stops, the network goes on
        return start, asyncio.get_running_loop().time()

    start, after = sa.run(main())
    assert start == sa.DEFAULT_EPOCH
    assert after == pytest.approx(2.5)


def test_wait_for_times_out_in_virtual_time() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10_000)

    async def main() -> float:
        server = await asyncio.start_server(silent, "127.0.0.1", 9000)
        reader, writer = await asyncio.open_connection("127.0.0.1", 9000)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 5)
        writer.close()
        server.close()
        return loop.time() - t0

    assert sa.run(main()) == pytest.approx(5.0, abs=1e-9)


def test_asyncio_timeout_measures_virtual_seconds() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            async with asyncio.timeout(7.25):
                await asyncio.Event().wait()
        except TimeoutError:
            return loop.time() - t0
        raise AssertionError("no timeout")

    assert sa.run(main()) == pytest.approx(7.25, abs=1e-9)


def test_unknown_name_raises_gaierror_and_localhost_is_per_host() -> None:
    async def main() -> None:
        with pytest.raises(socket.gaierror) as info:
            await asyncio.open_connection("no-such-host", 80)
        assert info.value.errno == socket.EAI_NONAME
        # A server on the loopback of host "server" is not reachable on main's loopback.
        sa.spawn(echo_server(8081, "127.0.0.1"), host="server")
        await asyncio.sleep(0)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("localhost", 8081)
        with pytest.raises(ConnectionRefusedError):  # and not on its address either
            await asyncio.open_connection("server", 8081)

    sa.run(main())


def test_socket_module_resolves_simulated_hosts() -> None:
    async def main() -> tuple[str, str, list[tuple[object, ...]]]:
        sa.address("db")
        infos = socket.getaddrinfo("db", 5432, type=socket.SOCK_STREAM)
        return socket.gethostbyname("db"), socket.gethostname(), [info[4] for info in infos]

    assert sa.run(main()) == ("10.0.0.2", "main", [("10.0.0.2", 5432)])


def test_protocols_and_create_connection() -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data.upper())  # type: ignore[attr-defined]

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.done = asyncio.get_running_loop().create_future()
            self.got = b""

        def data_received(self, data: bytes) -> None:
            self.got += data
            if len(self.got) >= 5:
                self.done.set_result(self.got)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, port=7000)
        await server.serve_forever()

    async def main() -> bytes:
        sa.spawn(serve(), host="server")
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(Client, "server", 7000)
        transport.write(b"hello")
        got = await protocol.done
        transport.close()
        return got

    assert sa.run(main()) == b"HELLO"


def test_loop_sock_api() -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind(("0.0.0.0", 6000))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        client.setblocking(False)
        await loop.sock_connect(client, ("127.0.0.1", 6000))
        conn, _ = await loop.sock_accept(listener)
        await loop.sock_sendall(client, b"x" * 100_000)
        got = b""
        while len(got) < 100_000:
            got += await loop.sock_recv(conn, 65536)
        for sock in (conn, client, listener):
            sock.close()
        return got

    assert sa.run(main()) == b"x" * 100_000


def test_simulated_sockets_are_sockets_with_simulated_fds() -> None:
    async def main() -> None:
        a = socket.socket()
        assert isinstance(a, socket.socket)
        assert a.fileno() >= DISTINCT_FD_BASE
        fds = {a.fileno()}

        async def other() -> int:
            s = socket.socket()
            n = s.fileno()
            s.close()
            return n

        fds.add(await sa.spawn(other(), host="server"))
        assert len(fds) == 2  # unique across hosts
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        assert tcp.proto == socket.IPPROTO_TCP and a.proto == 0
        assert tcp.family == socket.AF_INET and tcp.type == socket.SOCK_STREAM
        a.close()
        tcp.close()

    sa.run(main())


def test_real_sockets_made_outside_the_run_stay_real() -> None:
    # The fence is only up while the loop runs: afterwards socket.socket is the real class.
    sa.run(asyncio.sleep(0))
    assert socket.socket.__module__ == "socket"
    assert socket.getaddrinfo.__module__ == "socket"


def test_deadlock_is_reported_with_the_waiting_tasks() -> None:
    async def stuck() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        sa.spawn(stuck(), host="worker", name="the-stuck-one")
        await asyncio.Event().wait()

    with pytest.raises(sa.Deadlock) as info:
        sa.run(main())
    message = str(info.value)
    assert "every task waits" in message
    assert "the-stuck-one on worker" in message
    assert "main on main" in message
    assert "test_run.py" in message


def test_main_returning_lets_in_flight_fins_arrive() -> None:
    closed: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until EOF
        closed.append("server saw EOF")
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 8000)
        sa.spawn(client(), host="c1")
        await asyncio.sleep(1)
        server.close()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("main", 8000)  # connected at 0.2 s
        await asyncio.sleep(0.75)
        writer.close()  # the FIN leaves at 0.95 s and arrives at 1.05 s, after main returned

    sa.run(main(), latency=0.1)
    assert closed == ["server saw EOF"]
    closed.clear()
    sa.run(main(), latency=0.1, settle=0)  # without settling, the FIN never arrives
    assert closed == []


def test_exceptions_carry_the_seed_and_reproduce_call() -> None:
    async def main() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError) as info:
        sa.run(main(), seed=42, loss=0.01)
    assert "seed=42" in "".join(info.value.__notes__)
    assert "loss=0.01" in "".join(info.value.__notes__)


def test_run_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="schedule"):
        sa.run(asyncio.sleep(0), schedule="random")
    with pytest.raises(ValueError, match="host address"):
        sa.run(asyncio.sleep(0), hosts={"server": "127.0.0.1"})


def test_helpers_need_a_simulation() -> None:
    with pytest.raises(RuntimeError, match="running simulation"):
        sa.network()


def test_asyncio_runner_with_loop_factory() -> None:
    async def serve() -> None:
        # Not `async with server`: on Python 3.12.1 its wait_closed() waits for ever for a
        # handler that Runner.close() cancelled (CPython gh-109538); simnet.aio.run would
        # report that as a deadlock, asyncio.Runner as a hang.
        await asyncio.start_server(echo_handler, "0.0.0.0", 8080)
        await asyncio.Event().wait()

    async def main() -> list[bytes]:
        sa.spawn(serve(), host="server")
        await asyncio.sleep(0)
        return await ask("server", 8080, [b"r\n"])

    with asyncio.Runner(loop_factory=sa.loop_factory(seed=3, loss=0.05)) as runner:
        assert runner.run(main()) == [b"echo r\n"]


def test_pcap_of_an_asyncio_run(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "run.pcap"  # type: ignore[operator]

    async def main() -> list[bytes]:
        sa.spawn(echo_server(), host="server")
        await asyncio.sleep(0)
        return await ask("server", 8080, [b"captured\n"])

    assert sa.run(main(), pcap=path) == [b"echo captured\n"]
    data = path.read_bytes()
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")  # pcap magic (us or ns)
    assert b"echo captured\n" in data


def test_socket_methods_frameworks_call() -> None:
    async def main() -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, peer = listener.accept()
        assert conn.proto == socket.IPPROTO_TCP  # inherited from the listener, as CPython does
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
        assert client.sendmsg([b"gath", memoryview(b"ered")]) == 8
        assert conn.recv(100) == b"gathered"
        twin = conn.dup()
        assert twin.fileno() != conn.fileno()
        conn.close()
        twin.sendall(b"still open")  # the file lives while a dup holds it
        assert client.recv(100) == b"still open"
        fd = twin.detach()  # the fd stays open; a new object can take it over
        assert twin.fileno() == -1
        again = socket.socket(fileno=fd)
        assert again.getpeername() == client.getsockname()
        again.close()
        assert client.recv(100) == b""  # the last close sent the FIN
        for sock in (client, listener):
            sock.close()
        with pytest.raises(OSError):
            client.send(b"x")

    sa.run(main())
