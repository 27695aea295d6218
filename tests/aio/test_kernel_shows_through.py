"""What the toy networks of other asyncio simulators lack, seen by an unmodified asyncio program:
the handshake and its latency, a full accept queue, bounded buffers and flow control, partial
writes, RST versus FIN, refused connections, loss with retransmission, partitions and crashes."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest

import simnet.aio as sa


def test_connect_takes_a_round_trip_and_the_server_sees_the_client_address() -> None:
    async def main() -> tuple[float, tuple[str, int]]:
        peers: list[tuple[str, int]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer.get_extra_info("peername"))
            writer.close()

        async def serve() -> None:
            server = await asyncio.start_server(handler, "0.0.0.0", 80)
            await server.serve_forever()

        sa.spawn(serve(), host="server")
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        reader, writer = await asyncio.open_connection("server", 80)
        elapsed = loop.time() - t0
        await reader.read()
        writer.close()
        return elapsed, peers[0]

    elapsed, peer = sa.run(main(), latency=0.025)
    assert elapsed == pytest.approx(0.050, abs=1e-5)  # SYN out, SYN-ACK back (+ the seeded jitter of < 1 us)
    assert peer[0] == "10.0.0.1" and 32768 <= peer[1] <= 60999


def test_connection_refused_and_unreachable_hosts() -> None:
    async def main() -> float:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", 1)
        sa.address("silent")  # a host with nothing listening answers with RST
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("silent", 1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):  # no such host: SYNs vanish, retried 1 s later, ...
            await asyncio.wait_for(asyncio.open_connection("10.0.0.200", 80), 10)
        return loop.time() - t0

    assert sa.run(main()) == pytest.approx(10)


def test_a_full_accept_queue_drops_syns_until_accept_makes_room() -> None:
    async def main() -> list[float]:
        listener = socket.socket()
        listener.bind(("0.0.0.0", 80))
        listener.listen(1)  # room for backlog + 1 = 2 completed connections (LINUX.md §1)
        listener.setblocking(False)
        loop = asyncio.get_running_loop()

        async def connect(delay: float) -> float:
            await asyncio.sleep(delay)
            t0 = loop.time()
            await asyncio.open_connection("main", 80)
            return loop.time() - t0

        tasks = [sa.spawn(connect(0.1 * i), host=f"c{i}") for i in range(3)]
        await asyncio.sleep(3.5)  # nobody accepts for 3.5 s
        accepted = 0
        while accepted < 3:
            try:
                listener.accept()
                accepted += 1
            except BlockingIOError:
                await asyncio.sleep(0.01)
        return [await task for task in tasks]

    times = sa.run(main(), latency=0.001)
    assert times[0] == pytest.approx(0.002, abs=1e-5) and times[1] == pytest.approx(0.002, abs=1e-5)
    # The third SYN met a full queue and was dropped; so were its retransmissions (1 s apart,
    # tcp_syn_linear_timeouts) until accept() made room at 3.5 s.
    assert times[2] > 3.3


def test_flow_control_a_slow_reader_makes_drain_wait_and_send_partial() -> None:
    async def main() -> tuple[int, int, bytes]:
        got = bytearray()
        done = asyncio.Event()

        async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while chunk := await reader.read(4096):
                got.extend(chunk)
                await asyncio.sleep(0.01)  # 4 KiB per 10 ms
            done.set()
            writer.close()

        async def serve() -> None:
            server = await asyncio.start_server(slow_reader, "0.0.0.0", 80)
            await server.serve_forever()

        sa.spawn(serve(), host="server")
        await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection("server", 80)
        payload = bytes(range(256)) * 1024  # 256 KiB against 8 KiB buffers
        writer.write(payload)
        buffered = writer.transport.get_write_buffer_size()  # the kernel took only part
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await writer.drain()
        waited = loop.time() - t0
        writer.close()
        await done.wait()
        return buffered, int(waited), bytes(got)

    buffered, waited, got = sa.run(main(), rcvbuf=4096, sndbuf=4096)
    assert buffered > 200_000  # a partial write: most of it stayed in asyncio's buffer
    assert waited >= 0  # drain returned once the buffer fell below the high-water mark
    assert got == bytes(range(256)) * 1024


def test_reset_versus_fin() -> None:
    async def main() -> list[str]:
        seen: list[str] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                data = await reader.read(100)
                seen.append("eof" if data == b"" else "data")
            except ConnectionResetError:
                seen.append("reset")
            writer.close()

        server = await asyncio.start_server(handler, "0.0.0.0", 80)
        for abort in (False, True):
            sock = socket.socket()
            if abort:  # SO_LINGER 0: close sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", 80))
            await asyncio.sleep(0.01)
            sock.close()
            await asyncio.sleep(0.01)
        server.close()
        return seen

    assert sa.run(main()) == ["eof", "reset"]


def test_loss_is_repaired_by_retransmission_and_counted() -> None:
    async def main() -> tuple[bytes, int, int]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(200_000))
            await writer.drain()
            writer.close()

        async def serve() -> None:
            server = await asyncio.start_server(handler, "0.0.0.0", 80)
            await server.serve_forever()

        sa.spawn(serve(), host="server")
        await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection("server", 80)
        writer.write(b"z" * 200_000)
        echoed = await reader.read()
        counters = sa.network().counters
        return echoed, counters["lost"], counters["retransmits"] + counters["fast_retransmits"]

    echoed, lost, retransmitted = sa.run(main(), seed=5, loss=0.05)
    assert echoed == b"z" * 200_000
    assert lost > 0 and retransmitted > 0


def test_short_io_reaches_the_program_and_it_still_works() -> None:
    async def main() -> tuple[bytes, int, int]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(50_000))
            writer.close()

        server = await asyncio.start_server(handler, "0.0.0.0", 80)
        reader, writer = await asyncio.open_connection("127.0.0.1", 80)
        for _ in range(10):
            writer.write(b"q" * 5_000)
            await writer.drain()
        echoed = await reader.read()
        server.close()
        counters = sa.network().counters
        return echoed, counters["short_recvs"], counters["short_sends"]

    echoed, short_recvs, short_sends = sa.run(main(), seed=2, short_io=0.5)
    assert echoed == b"q" * 50_000
    assert short_recvs > 0 and short_sends > 0


def test_a_partition_named_by_host_stalls_and_heals(tmp_path: object) -> None:
    faults = {"partitions": [{"a": "server", "b": "c1", "start": 1.0, "end": 4.0}]}

    async def client() -> list[tuple[float, bytes]]:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("server", 80)
        answers = []
        for i in range(3):
            writer.write(b"%d\n" % i)
            line = await reader.readline()
            answers.append((loop.time(), line))
            await asyncio.sleep(1.2)
        writer.close()
        return answers

    async def main() -> list[tuple[float, bytes]]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line)

        async def serve() -> None:
            server = await asyncio.start_server(handler, "0.0.0.0", 80)
            await server.serve_forever()

        # Spawned in the opposite order to the addresses the schedule gave them.
        answers = sa.spawn(client(), host="c1")
        sa.spawn(serve(), host="server")
        return await answers

    answers = sa.run(main(), faults=faults)
    assert [line for _, line in answers] == [b"0\n", b"1\n", b"2\n"]
    assert answers[1][0] > 4.0  # the second exchange waited out the partition


def test_a_crashed_server_host_ends_its_tasks_and_the_client_sees_it() -> None:
    faults = {"crashes": [{"host": "server", "at": 1.0}]}

    async def main() -> str:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line)

        async def serve() -> None:
            server = await asyncio.start_server(handler, "0.0.0.0", 80)
            await server.serve_forever()

        server_task = sa.spawn(serve(), host="server")
        await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection("server", 80)
        writer.write(b"a\n")
        assert await reader.readline() == b"a\n"
        await asyncio.sleep(2)
        assert server_task.cancelled()
        writer.write(b"b\n")  # the host is gone: nothing answers, retransmissions give up
        try:
            await asyncio.wait_for(reader.readline(), 30)
        except TimeoutError:
            return "timed out"
        return "answered"

    assert sa.run(main(), faults=faults) == "timed out"


async def _echo_service_and_client(lines: int, gap: float) -> tuple[list[bytes], str]:
    """An echo server on "server"; a client on main writes `lines` lines `gap` apart and reads
    each answer; returns the answers and how the connection ended."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 80)
        await server.serve_forever()

    sa.spawn(serve(), host="server")
    await asyncio.sleep(0)
    reader, writer = await asyncio.open_connection("server", 80)
    answers: list[bytes] = []
    try:
        for i in range(lines):
            writer.write(b"%d\n" % i)
            answers.append(await asyncio.wait_for(reader.readline(), 30))
            await asyncio.sleep(gap)
        end = "ok"
    except ConnectionResetError:
        end = "reset"
    except TimeoutError:
        end = "timeout"
    writer.close()
    return answers, end


def test_an_injected_rst_named_by_host_reaches_the_program_as_connection_reset() -> None:
    faults = {"rsts": [{"host": "server", "at": 1.0, "nth": 1}]}
    answers, end = sa.run(_echo_service_and_client(5, 0.5), faults=faults)
    assert end == "reset"
    assert answers[:2] == [b"0\n", b"1\n"]  # the exchanges before 1 s went through


def test_a_hold_delays_then_releases_in_order() -> None:
    faults = {"holds": [{"a": "server", "b": "main", "start": 0.5, "end": 2.5}]}

    async def main() -> tuple[list[bytes], str, float]:
        answers, end = await _echo_service_and_client(3, 0.4)
        return answers, end, asyncio.get_running_loop().time()

    answers, end, finished = sa.run(main(), faults=faults)
    assert (answers, end) == ([b"0\n", b"1\n", b"2\n"], "ok")
    assert finished > 2.5  # the held exchange waited for the release


def test_duplication_jitter_and_spurious_wakeups_change_nothing_a_correct_program_sees() -> None:
    faults = {"links": [{"duplicate": 0.2, "jitter": ["uniform", 0, 0.002]}], "short_io": [{"spurious_wakeup": 0.3}]}

    async def main() -> tuple[list[bytes], str, dict[str, int]]:
        answers, end = await _echo_service_and_client(20, 0.01)
        counters = sa.network().counters
        return answers, end, {k: counters[k] for k in ("duplicated", "spurious_wakeups")}

    answers, end, counters = sa.run(main(), seed=4, faults=faults)
    assert (answers, end) == ([b"%d\n" % i for i in range(20)], "ok")
    assert counters["duplicated"] > 0 and counters["spurious_wakeups"] > 0


def test_a_run_logs_no_stdlib_noise_at_its_end(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[list[bytes], str]:
        return await _echo_service_and_client(3, 0.1)  # returns with the server still serving

    with caplog.at_level("WARNING"):
        assert sa.run(main(), loss=0.05, seed=3)[1] == "ok"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("asyncio")] == []


def test_a_toml_schedule_names_hosts_as_simnet_run_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text('[[rsts]]\nhost = "server"\nat = 1.0\n', encoding="utf-8")
    assert sa.run(_echo_service_and_client(5, 0.5), faults=path)[1] == "reset"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rsts]]\nhost = "server"\nat = -1\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.toml: rsts\[0\]: at"):
        sa.run(_echo_service_and_client(1, 0), faults=bad)


def test_a_crashed_host_restarts_its_server_when_spawned_with_restart() -> None:
    faults = {"crashes": [{"host": "server", "at": 1.0, "restart_after": 2.0}]}
    starts: list[float] = []

    async def serve() -> None:
        starts.append(asyncio.get_running_loop().time())

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            writer.close()

        server = await asyncio.start_server(handler, "0.0.0.0", 80)
        await server.serve_forever()

    async def ask() -> bytes:
        reader, writer = await asyncio.open_connection("server", 80)
        writer.write(b"hi\n")
        line = await reader.readline()
        writer.close()
        return line

    async def main() -> list[str]:
        sa.spawn(serve(), host="server", restart=serve)
        await asyncio.sleep(0)
        seen = [(await ask()).decode().strip()]
        await asyncio.sleep(1.5)  # t=1.5: crashed, nothing listens, the host drops everything
        try:
            await asyncio.wait_for(ask(), 1)
        except TimeoutError:
            seen.append("timeout while down")
        await asyncio.sleep(1)  # t=3.5: restarted at 3.0, the server started again
        seen.append((await ask()).decode().strip())
        return seen

    assert sa.run(main(), faults=faults) == ["hi", "timeout while down", "hi"]
    assert starts == [0.0, 3.0]
