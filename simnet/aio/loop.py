"""The event loop: asyncio's own selector loop, on simulated epolls and the simulation's clock.

`SimEventLoop` is `asyncio.SelectorEventLoop` with four things replaced, and nothing else, so
that user programs meet asyncio's real transports, streams, protocols and TLS:

* the selector (`SimSelector`) keeps one simulated epoll per host and, when the loop would
  block, runs the network (`Network.wait_any`) until a registered socket is ready or the loop's
  next timer is due -- so `loop.time()` is the network's virtual clock and an hour of
  `asyncio.sleep` costs no wall time;
* no self-pipe: the loop opens no real socket pair (nothing real is opened at all);
* `getaddrinfo`/`getnameinfo` answer from the simulated hosts, and `run_in_executor` runs the
  function in the loop's own thread, deterministically (threads are outside the simulation);
* schedule exploration: sockets ready together are reported in an order drawn from the seed,
  and timers due at the same instant fire in a seeded order (asyncio's guarantees -- FIFO
  `call_soon`, a future's callbacks in order -- are untouched: they never depend on either).
"""

from __future__ import annotations

import asyncio
import gc
import selectors
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from simnet.aio.fence import FENCE, FencedError
from simnet.aio.world import World, current_host
from simnet.kernel.clock import NS_PER_S
from simnet.kernel.network import GC_YOUNG_THRESHOLD
from simnet.kernel.settings import DISTINCT_FD_BASE, FDS_PER_HOST

_T = TypeVar("_T")

if TYPE_CHECKING:
    from simnet.kernel.epoll import Epoll
    from simnet.kernel.host import Host

EPOLLIN = 0x001
EPOLLOUT = 0x004
EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class SimSelector(selectors._BaseSelectorImpl):
    """A selector over simulated sockets of any host: one simulated epoll per host."""

    # selectors._BaseSelectorImpl's own fields and helper (the fd -> key map every selector keeps).
    _fd_to_key: dict[int, selectors.SelectorKey]
    _fileobj_lookup: Callable[[Any], int]

    def __init__(self, world: World) -> None:
        super().__init__()
        self._world = world
        self._net = world.net
        # host ip -> its epoll; in the order hosts first registered something (deterministic).
        self._epolls: dict[str, Epoll] = {}
        self._epoll_list: list[Epoll] = []
        self._hosts: list[Host] = []  # the network's hosts in creation order, as far as seen

    def _host_of(self, fd: int) -> Host:
        if fd >= DISTINCT_FD_BASE:
            index = (fd - DISTINCT_FD_BASE) // FDS_PER_HOST
            hosts = self._hosts
            if index >= len(hosts):  # a host made since: the n-th host owns the n-th fd range
                hosts = self._hosts = list(self._net.hosts.values())
            if index < len(hosts):
                host = hosts[index]
                if fd in host.fds:
                    return host
        raise FencedError(
            f"selector.register({fd}): fd {fd} is not a simulated socket -- a real file or pipe "
            "cannot be watched inside a simnet.aio simulation"
        )

    def _epoll_for(self, host: Host) -> Epoll:
        ep = self._epolls.get(host.ip)
        if ep is None or ep.closed:
            ep = host.epoll()
            self._epolls[host.ip] = ep
            self._epoll_list = [e for e in self._epolls.values() if not e.closed]
        return ep

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        mask = (EPOLLIN if events & EVENT_READ else 0) | (EPOLLOUT if events & EVENT_WRITE else 0)
        try:
            self._epoll_for(self._host_of(key.fd)).register(key.fd, mask)
        except BaseException:
            super().unregister(fileobj)
            raise
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        try:
            host = self._host_of(key.fd)
        except FencedError:
            return key  # the fd was closed (or its host crashed): its registration went with it
        ep = self._epolls.get(host.ip)
        if ep is not None and not ep.closed:
            try:
                ep.unregister(key.fd)
            except OSError:
                pass  # closed and reused: epoll dropped it at the last close, as Linux
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = self._fileobj_lookup(fileobj)
        key = self._fd_to_key.get(fd)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if events != key.events:
            mask = (EPOLLIN if events & EVENT_READ else 0) | (EPOLLOUT if events & EVENT_WRITE else 0)
            self._epoll_for(self._host_of(fd)).modify(fd, mask)
            key = key._replace(events=events, data=data)
            self._fd_to_key[fd] = key
        elif data != key.data:
            key = key._replace(data=data)
            self._fd_to_key[fd] = key
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            timeout_ns: int | None = None
        elif timeout <= 0:
            timeout_ns = 0
        else:
            # To the nearest ns: the loop runs every timer due within its clock resolution (1 ns)
            # of now, so waking a fraction of a ns early still fires the timer it waited for.
            timeout_ns = round(timeout * NS_PER_S)
        epolls = self._epoll_list
        self._net.wait_any(epolls, timeout_ns)
        ready: list[tuple[selectors.SelectorKey, int]] = []
        fd_to_key = self._fd_to_key
        for ep in epolls:
            if not ep.ready:
                continue
            for fd, event in ep.collect(1 << 30):
                events = 0
                # EpollSelector's mapping: ERR and HUP wake both directions.
                if event & ~EPOLLIN:
                    events |= EVENT_WRITE
                if event & ~EPOLLOUT:
                    events |= EVENT_READ
                key = fd_to_key.get(fd)
                if key is not None:
                    ready.append((key, events & key.events))
        rng = self._world.schedule_rng
        if rng is not None and len(ready) > 1:
            rng.shuffle(ready)  # what the real world leaves open: which ready socket comes first
        return ready

    def close(self) -> None:
        for ep in self._epolls.values():
            ep.close()
        self._epolls.clear()
        self._epoll_list = []
        super().close()


class SimEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop on the simulated kernel (see the module docstring).

    Overrides below keep asyncio's runtime signatures; where typeshed types a method more
    narrowly (generic over the callback's arguments), the override is marked for mypy."""

    # BaseEventLoop's and the selector loop's own fields and helpers.
    _transports: weakref.WeakValueDictionary[int, Any]
    _signal_handlers: dict[int, asyncio.Handle]
    _check_closed: Callable[[], None]

    def __init__(self, world: World) -> None:
        self._world = world
        self._owner_thread = threading.get_ident()
        self._spawned: dict[asyncio.Task[Any], None] = {}  # membership only, never iterated
        self._restarts: dict[str, list[Callable[[], Any]]] = {}  # host ip -> what starts on it
        self._task_hosts: weakref.WeakKeyDictionary[asyncio.Task[Any], Host] = weakref.WeakKeyDictionary()
        super().__init__(SimSelector(world) if world.recorder is None else world.recorder.selector(world))
        self._clock_resolution = 1e-9

    @property
    def world(self) -> World:
        return self._world

    def create_task(  # type: ignore[override]
        self, coro: Coroutine[Any, Any, _T], *, name: str | None = None, context: Any = None
    ) -> asyncio.Task[_T]:
        task = super().create_task(coro, name=name, context=context)
        # Which host the task runs on, from the context it was made with (Python 3.11's C Task
        # does not show its context); looked up only, never iterated.
        host = current_host.get() if context is None else context.get(current_host)
        if host is not None:
            self._task_hosts[task] = host
        return task

    def keep_alive(self, task: asyncio.Task[Any]) -> None:
        """Hold a strong reference to `task` until it is done. asyncio keeps only weak ones, so
        a spawned server whose caller dropped the Task would be garbage-collected mid-run (a
        process on a simulated host lives until it ends, as a real one does)."""
        self._spawned[task] = None
        task.add_done_callback(self._spawned.pop)

    def on_restart(self, host: Host, start: Callable[[], Any]) -> None:
        """Call `start()` each time `host` restarts after a crash (spawn's `restart=`)."""
        self._restarts.setdefault(host.ip, []).append(start)

    def host_restarted(self, host: Host) -> None:
        """The network brought `host` back: run what was registered to start on it, in order."""
        starts = self._restarts.get(host.ip, ())
        for start in starts:
            self.call_soon(start)
        if starts:
            self._world.net.wake_waiter()  # the loop may be waiting in select: it has work now

    def abort_transports_of(self, host: Host) -> None:
        """Abort every transport whose socket lived on `host` (it crashed), in fd order."""
        first, limit = host.first_fd, host.fd_limit
        doomed = sorted((fd, t) for fd, t in list(self._transports.items()) if first <= fd < limit)
        for _fd, transport in doomed:
            transport.abort()

    def task_host(self, task: asyncio.Task[Any]) -> Host | None:
        """The simulated host `task` runs on (None: host "main")."""
        return self._task_hosts.get(task)

    def run_forever(self) -> None:
        FENCE.enter(self._world)
        # As Network.run does: a simulation keeps many long-lived objects and makes few cycles,
        # so the young-generation collections CPython makes every 700 allocations re-scan the
        # same survivors. Collect less often while the loop runs; results never depend on it.
        thresholds = gc.get_threshold()
        if thresholds[0] and thresholds[0] < GC_YOUNG_THRESHOLD:
            gc.set_threshold(GC_YOUNG_THRESHOLD, max(thresholds[1], 50), max(thresholds[2], 100))
        try:
            super().run_forever()
        finally:
            gc.set_threshold(*thresholds)
            FENCE.exit()

    def close(self) -> None:
        super().close()
        self._world.net.stop_capture()  # a pcap file is complete once the loop is closed
        if self._world.recorder is not None:
            self._world.recorder.close()  # so is a trace

    def time(self) -> float:
        return self._world.net.now_ns / NS_PER_S

    # -- no self-pipe: nothing real is opened -------------------------------------------------------

    def _make_self_pipe(self) -> None:
        self._ssock = None
        self._csock = None

    def _close_self_pipe(self) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:  # type: ignore[override]
        if threading.get_ident() != self._owner_thread:
            raise FencedError(
                "loop.call_soon_threadsafe() from another thread: real threads are outside the "
                "simulation (its clock and its order would depend on the machine)"
            )
        return self.call_soon(callback, *args, context=context)

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]
        # A simulated process receives no signals; the handler is kept and never called.
        self._check_closed()
        self._signal_handlers[sig] = asyncio.Handle(callback, args, self, None)

    def remove_signal_handler(self, sig: int) -> bool:
        return self._signal_handlers.pop(sig, None) is not None

    # -- schedule exploration ---------------------------------------------------------------------

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        rng = self._world.schedule_rng
        if rng is not None:
            # Timers due at the same instant fire in an order drawn from the seed: nudge each by
            # under the clock's resolution, so when it fires is unchanged, only the tie order.
            when = when + rng.random() * 0.5e-9
        return super().call_at(when, callback, *args, context=context)

    # -- the world's services -----------------------------------------------------------------------

    async def getaddrinfo(  # type: ignore[override]
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, Any, int, str, tuple[str, int]]]:
        return self._world.getaddrinfo(host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: tuple[str, int], flags: int = 0) -> tuple[str, str]:  # type: ignore[override]
        return self._world.getnameinfo(sockaddr, flags)

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:  # type: ignore[override]
        """Runs `func` in the loop's thread at the next turn of the loop: deterministic, and a
        blocking call in it on a simulated socket blocks the program while the network runs on,
        as it would block a real worker thread."""
        self._check_closed()
        future: asyncio.Future[Any] = self.create_future()

        def run() -> None:
            if future.cancelled():
                return
            try:
                result = func(*args)
            except BaseException as exc:  # noqa: BLE001 -- delivered to the awaiting task
                future.set_exception(exc)
            else:
                future.set_result(result)

        self.call_soon(run)
        return future

    def set_default_executor(self, executor: Any) -> None:
        self._default_executor = executor  # never used: run_in_executor runs in the loop

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        return None

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise FencedError(f"loop.subprocess_exec{args[1:2]!r}: subprocesses are outside the simulation")

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        raise FencedError(f"loop.subprocess_shell{args[1:2]!r}: subprocesses are outside the simulation")

    async def create_unix_server(self, *args: Any, **kwargs: Any) -> Any:
        raise FencedError("loop.create_unix_server(): simnet models TCP over IPv4; AF_UNIX is a real file")

    async def create_unix_connection(self, *args: Any, **kwargs: Any) -> Any:
        raise FencedError("loop.create_unix_connection(): simnet models TCP over IPv4; AF_UNIX is a real file")

    async def connect_read_pipe(self, protocol_factory: Any, pipe: Any) -> Any:
        raise FencedError(f"loop.connect_read_pipe({pipe!r}): pipes are real files, outside the simulation")

    async def connect_write_pipe(self, protocol_factory: Any, pipe: Any) -> Any:
        raise FencedError(f"loop.connect_write_pipe({pipe!r}): pipes are real files, outside the simulation")

    async def create_datagram_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        raise FencedError("loop.create_datagram_endpoint(): simnet models TCP only (no UDP)")

    async def _sock_sendfile_native(self, sock: Any, file: Any, offset: int, count: int | None) -> Any:
        # os.sendfile needs a real socket fd: asyncio falls back to reading and sending.
        raise asyncio.exceptions.SendfileNotAvailableError("simulated sockets send files through the buffers")
