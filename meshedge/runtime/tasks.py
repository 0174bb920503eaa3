"""Task registry and execution: which functions this node runs, and how.

Every node that should run a task registers the function under the same name. Nothing
is ever unpickled from the network: a task travels as its name and plain CBOR
arguments, and its result comes back as plain CBOR data.
"""

from __future__ import annotations

import functools
import inspect
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

import outcome
import trio

from ..errors import LocalProtocolError, MeshError
from ..identity import NodeId
from ..wire.cbor import CborError, check_plain

__all__ = ["RegisteredTask", "TaskError", "TaskKind", "TaskRegistry", "UnknownTaskError"]

#: How a task runs: as a trio task, in a worker thread, or in a worker process.
TaskKind = Literal["async", "thread", "process"]
F = TypeVar("F", bound=Callable[..., Any])
#: Nesting allowed in task arguments and results (as for message bodies).
_MAX_DEPTH = 16


class TaskError(MeshError):
    """The task raised; carries the remote exception's type name and message.

    Attributes:
        type_name: the exception's class name where the task ran (e.g. ``"ValueError"``).
        message: ``str()`` of that exception.
        ran_on: the node that ran it.
    """

    def __init__(self, type_name: str, message: str, ran_on: NodeId | None = None) -> None:
        self.type_name = type_name
        self.message = message
        self.ran_on = ran_on
        where = f" on {ran_on.short}" if ran_on is not None else ""
        super().__init__(f"{type_name}: {message}{where}")


class UnknownTaskError(LocalProtocolError):
    """No task of that name is registered on this node."""


@dataclass(frozen=True, slots=True)
class RegisteredTask:
    """A function registered for remote execution."""

    #: The name every node registers it under.
    name: str
    #: The function itself.
    function: Callable[..., Any]
    #: How it runs.
    kind: TaskKind
    #: Tags a node needs to run it (merged with a call's own ``requires``).
    requires: Mapping[str, str] = field(default_factory=dict)


class TaskRegistry:
    """The functions a node may run for the mesh.

    Use ``@registry.task`` or ``@registry.task(name=..., kind=..., requires=...)``. The
    name defaults to ``module.qualname``; the kind to ``"async"`` for coroutine
    functions and ``"thread"`` otherwise. Use ``"process"`` for CPU-bound work: it runs
    in a worker process (the function must be importable by its module path there).
    """

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    @overload
    def task(self, function: F, /) -> F: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        kind: TaskKind | None = None,
        requires: Mapping[str, str] | None = None,
    ) -> Callable[[F], F]: ...

    def task(  # type: ignore[misc]  # mypy 2.4 rejects this valid overload pair
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        kind: TaskKind | None = None,
        requires: Mapping[str, str] | None = None,
    ) -> Any:
        """Register a function (a decorator, with or without arguments).

        Raises:
            LocalProtocolError: a bad kind, a name already taken, or an async function
                declared as thread/process (or a plain one as async).
        """

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            task_name = name or f"{fn.__module__}.{fn.__qualname__}"
            is_async = inspect.iscoroutinefunction(fn)
            task_kind: TaskKind = kind or ("async" if is_async else "thread")
            if task_kind not in ("async", "thread", "process"):
                raise LocalProtocolError(
                    f"kind must be async, thread or process, not {task_kind!r}"
                )
            if (task_kind == "async") != is_async:
                raise LocalProtocolError(
                    f"{task_name}: kind={task_kind!r} does not fit a "
                    f"{'coroutine' if is_async else 'plain'} function"
                )
            if task_name in self._tasks and self._tasks[task_name].function is not fn:
                raise LocalProtocolError(f"a task named {task_name!r} is already registered")
            tags = dict(requires or {})
            for key, value in tags.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise LocalProtocolError("requires maps tag names to text values")
            self._tasks[task_name] = RegisteredTask(task_name, fn, task_kind, tags)
            return fn

        if function is not None:
            return register(function)
        return register

    def names(self) -> frozenset[str]:
        """Every registered name."""
        return frozenset(self._tasks)

    def get(self, name: str) -> RegisteredTask:
        """The task registered under ``name``.

        Raises:
            UnknownTaskError: nothing is registered under it.
        """
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTaskError(f"no task named {name!r} is registered") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)


def check_arguments(args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise :class:`LocalProtocolError` unless the arguments are plain CBOR data."""
    try:
        check_plain(args, _MAX_DEPTH)
        check_plain(kwargs, _MAX_DEPTH)
    except CborError as exc:
        raise LocalProtocolError(f"task arguments must be plain CBOR data: {exc}") from None


class _Job:
    __slots__ = ("function", "token", "done", "result", "cancelled")

    def __init__(self, function: Callable[[], Any], token: trio.lowlevel.TrioToken) -> None:
        self.function = function
        self.token = token
        self.done = trio.Event()
        self.result: outcome.Outcome[Any] | None = None
        self.cancelled = False  # set by the waiting trio task; read by the thread

    def deliver(self, result: outcome.Outcome[Any]) -> None:  # in the trio thread
        self.result = result
        self.done.set()


class SlotThreads:
    """One worker thread per task slot, taking blocking tasks from one queue in order.

    A task queued while every thread is busy begins in the first thread to finish,
    at once: no round trip through the event loop between two tasks (the work-stealing
    core lines such tasks up; see ``run_ahead`` in :class:`~meshedge.core.stealing.WorkStealing`).
    Threads start on first use and end at :meth:`close`.
    """

    def __init__(self, count: int) -> None:
        self._count = max(1, count)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    async def run(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` in a slot thread; return its result or raise its exception.

        If the caller is cancelled, a task not begun yet never begins; a running one is
        abandoned: it finishes in the background and its result is dropped.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if len(self._threads) < self._count:
            thread = threading.Thread(target=self._work, name="meshedge-slot", daemon=True)
            thread.start()
            self._threads.append(thread)
        job = _Job(function, trio.lowlevel.current_trio_token())
        self._jobs.put(job)
        try:
            await job.done.wait()
        except BaseException:
            job.cancelled = True
            raise
        assert job.result is not None
        return job.result.unwrap()

    def close(self) -> None:
        """Let every thread end once it finishes what it is running."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads.clear()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancelled:
                continue
            result = outcome.capture(job.function)
            try:
                job.token.run_sync_soon(job.deliver, result)
            except trio.RunFinishedError:
                return


async def execute(
    registered: RegisteredTask,
    args: list[Any],
    kwargs: dict[str, Any],
    threads: SlotThreads,
) -> tuple[bool, Any]:
    """Run one task; returns ``(True, result)`` or ``(False, [type name, message])``.

    Cancellation: an async task is cancelled; a thread is abandoned (it finishes in the
    background, its result is dropped); a worker process is killed.
    """
    function = registered.function
    try:
        if registered.kind == "async":
            result = await function(*args, **kwargs)
        elif registered.kind == "thread":
            result = await threads.run(functools.partial(function, *args, **kwargs))
        else:
            import trio_parallel

            result = await trio_parallel.run_sync(
                functools.partial(function, *args, **kwargs), kill_on_cancel=True
            )
    except Exception as exc:
        return False, [type(exc).__name__, str(exc)]
    try:
        check_plain(result, _MAX_DEPTH)
    except CborError as exc:
        return False, ["TypeError", f"result is not plain CBOR data: {exc}"]
    return True, result
