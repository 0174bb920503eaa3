"""The task runner: run the tasks the core hands out, and wait for this node's own.

Tasks the core says to start run in trio tasks of the node's nursery, one after
another in a chain while the core has more ready (:meth:`TaskRunner.launch`); blocking
ones run in the slot threads (:class:`SlotThreads`). Tasks submitted here wait for
their outcome in a :class:`_Waiter`; ``map`` submits in slices so that the node keeps
serving its peers while the queue fills. Every call into the core goes through the
:class:`~meshedge.runtime._pump.Pump`.
"""

from __future__ import annotations

import functools
import math
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import outcome
import trio

from .._errors import LocalProtocolError
from .._identity import NodeId
from ..core._stealing import Task, TaskFinished, TaskOutcome
from ..wire._cbor import CborError, check_plain
from ._tasks import (
    MAX_DEPTH,
    RegisteredTask,
    TaskError,
    TaskRegistry,
    check_arguments,
    check_not_reimporting_main,
    unguarded_main,
)

if TYPE_CHECKING:
    from ._pump import Pump

__all__ = ["SUBMIT_BATCH", "SUBMIT_SLICE", "SlotThreads", "TaskRunner", "execute"]

#: ``Node.map`` submits for at most this long, and at most this many tasks, before
#: letting the rest of the node run.
SUBMIT_SLICE: Final = 0.0005
SUBMIT_BATCH: Final = 64


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
    core lines such tasks up; see ``run_ahead`` in :class:`~meshedge.core._stealing.WorkStealing`).
    Threads start on first use and end at :meth:`close`.
    """

    def __init__(self, count: int) -> None:
        self._count = max(1, count)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    async def run(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` in a slot thread; return its result or raise its exception.

        A checkpoint. If the caller is cancelled, a task not begun yet never begins; a
        running one is abandoned: it finishes in the background and its result is
        dropped.
        """
        return (await self.outcome(function)).unwrap()

    async def outcome(self, function: Callable[[], Any]) -> outcome.Outcome[Any]:
        """Run ``function`` in a slot thread; give what it returned or raised.

        Every exception of ``function``, ``SystemExit`` and ``KeyboardInterrupt``
        included, comes back as an :class:`outcome.Error`; only this trio task's own
        cancellation (or a ``KeyboardInterrupt`` trio delivers to it) is raised. A
        checkpoint; cancellation as for :meth:`run`.
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
        return job.result

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
) -> TaskOutcome:
    """Run one task and give its outcome: what it returned, or what it raised.

    Whatever the task's own code raised fails the task, ``SystemExit`` included (and,
    from a thread or a worker process, ``KeyboardInterrupt``): it never stops the node.
    Trio's cancellation and a ``KeyboardInterrupt`` from Ctrl-C still propagate.

    A checkpoint. Cancellation: an async task is cancelled; a thread is abandoned (it
    finishes in the background, its result is dropped); a worker process is killed.
    """
    call = functools.partial(registered.function, *args, **kwargs)
    try:
        if registered.kind == "async":
            result = await _in_trio(call)
        elif registered.kind == "thread":
            result = await threads.outcome(call)
        else:
            result = await _in_process(call)
    except Exception as exc:  # around the task: a broken worker, a job that does not pickle
        return TaskOutcome.raised(type(exc).__name__, str(exc))
    if isinstance(result, outcome.Error):
        return TaskOutcome.raised(type(result.error).__name__, str(result.error))
    value = result.unwrap()  # a Value: unwrapping gives what the task returned
    try:
        check_plain(value, MAX_DEPTH)
    except CborError as exc:
        return TaskOutcome.raised("TypeError", f"result is not plain CBOR data: {exc}")
    return TaskOutcome.returned(value)


async def _in_trio(call: Callable[[], Any]) -> outcome.Outcome[Any]:
    """Await an async task; what its coroutine raised comes back as an Error.

    ``SystemExit`` (``sys.exit()``) counts, alone or in a group of the task's own
    nursery; ``Cancelled`` and ``KeyboardInterrupt`` do not: trio raises those into any
    running code, so they are not the task's own.
    """
    try:
        return outcome.Value(await call())
    except (Exception, SystemExit) as exc:
        return outcome.Error(exc)
    except BaseExceptionGroup as group:
        if group.split((Exception, SystemExit))[1] is not None:
            raise
        return outcome.Error(group)


async def _in_process(call: Callable[[], Any]) -> outcome.Outcome[Any]:
    """Run a process task in a trio_parallel worker process.

    ``outcome.capture`` runs in the worker, so what the task raised comes back as an
    Error, ``SystemExit`` and ``KeyboardInterrupt`` included; trio_parallel's own
    failures (``BrokenWorkerProcessError``) and cancellation are raised here. A main
    module that would start its node again inside the worker fails the task at once,
    before any worker starts (see :func:`unguarded_main`).
    """
    problem = unguarded_main()
    if problem is not None:
        await trio.lowlevel.checkpoint()
        return outcome.Error(RuntimeError(problem))
    import trio_parallel

    job = functools.partial(outcome.capture, call)
    result: outcome.Outcome[Any] = await trio_parallel.run_sync(job, kill_on_cancel=True)
    return result


def run_ahead_names(registry: TaskRegistry) -> list[str]:
    """The tasks the core may line up behind busy slot threads: the thread ones."""
    return [name for name in registry.names() if registry.get(name).kind == "thread"]


class _Waiter:
    """Where the outcome of one own task lands."""

    __slots__ = ("task_id", "done", "event", "notify")

    def __init__(self, task_id: bytes) -> None:
        self.task_id = task_id
        self.done = trio.Event()
        self.event: TaskFinished | None = None
        self.notify: trio.MemorySendChannel[_Waiter] | None = None

    def finish(self, event: TaskFinished) -> None:
        self.event = event
        self.done.set()
        if self.notify is not None:
            self.notify.send_nowait(self)

    def result(self, return_exceptions: bool = False) -> Any:
        """What the task returned; if it raised, raise (or return) its TaskError."""
        event = self.event
        assert event is not None
        if event.ok:
            return event.value
        type_name, message = [*list(event.value), "", ""][:2]
        error = TaskError(str(type_name), str(message), event.ran_on)
        if return_exceptions:
            return error
        raise error


class TaskRunner:
    """This node's side of work stealing: running tasks, and waiting for its own.

    Args:
        pump: the node's pump, through which every call into the core goes.
        node_id: this node's id (the origin of the tasks it submits).
        registry: the functions this node runs, or None for a node without tasks.
        slots: tasks run at once (``NodeConfig.task_slots``).
        nursery: the node's nursery, where the tasks run.

    Raises:
        LocalProtocolError: this process is a worker process importing the main module
            (see :func:`~meshedge.runtime._tasks.check_not_reimporting_main`).
    """

    def __init__(
        self,
        pump: Pump,
        node_id: NodeId,
        registry: TaskRegistry | None,
        slots: int,
        nursery: trio.Nursery,
    ) -> None:
        check_not_reimporting_main()
        self._pump = pump
        self._node_id = node_id
        self._registry = registry
        self._nursery = nursery
        self._threads = SlotThreads(slots)
        self._scopes: dict[bytes, trio.CancelScope] = {}
        self._waiters: dict[bytes, _Waiter] = {}
        self._queue_space = trio.Event()
        self._flush_scheduled = False  # a _deferred_flush is spawned and has not run

    # ------------------------------------------------------------------ from the pump

    def finished(self, event: TaskFinished) -> None:
        """An own task's outcome arrived."""
        waiter = self._waiters.get(event.task_id)
        if waiter is not None:
            waiter.finish(event)

    def room(self) -> None:
        """The core's queue takes submissions again."""
        self._queue_space.set()

    def launch(
        self, cancel: Iterable[bytes], start: Iterable[Task], *, keep_one: bool = False
    ) -> tuple[Task, trio.CancelScope] | None:
        """Cancel and start the tasks the core says.

        With ``keep_one``, one task to start is returned instead of spawned: the caller
        runs it at once, in its own trio task.
        """
        for task_id in cancel:
            scope = self._scopes.pop(task_id, None)
            if scope is not None:
                scope.cancel()
        kept = None
        for task in start:
            scope = trio.CancelScope()
            self._scopes[task.id] = scope
            if keep_one and kept is None:
                kept = (task, scope)
            else:
                self._nursery.start_soon(self._run_task, task, scope)
        return kept

    def close(self) -> None:
        """Let the slot threads end (the node has stopped)."""
        self._threads.close()

    # ------------------------------------------------------------------ running

    async def _run_task(self, task: Task, scope: trio.CancelScope) -> None:
        """Run a task; then, while the core has another ready, run that one too.

        Chaining saves spawning a trio task per task, and the next task begins before
        this one's result is signed and sent: that flush runs as soon as the next task
        first yields. If it has not run by the end of the next task (tasks that never
        yield), the chain flushes itself and yields, so probes, frames and timers keep
        running however long the chain.
        """
        registry = self._registry
        assert registry is not None  # the core starts only registered names
        pump = self._pump
        following: tuple[Task, trio.CancelScope] | None = (task, scope)
        while following is not None:
            task, scope = following
            result: TaskOutcome | None = None
            with scope:
                result = await execute(
                    registry.get(task.name), task.args, task.kwargs, self._threads
                )
            self._scopes.pop(task.id, None)
            if result is None or scope.cancelled_caught:
                return
            pump.task_done(task.id, result)
            following = self.launch(*pump.task_orders(), keep_one=True)
            if following is None or registry.get(following[0].name).kind != "async":
                # Nothing to start, or a task that starts by handing itself to a thread
                # or process: no reason to hold the result (or a steal) back.
                pump.flush()
            elif self._flush_scheduled:
                pump.flush()
                await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                self._flush_scheduled = True
                self._nursery.start_soon(self._deferred_flush)

    async def _deferred_flush(self) -> None:
        self._flush_scheduled = False
        self._pump.flush()

    # ------------------------------------------------------------------ own tasks

    def _enqueue(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        requires: Mapping[str, str] | None,
        *,
        flush: bool = True,
    ) -> _Waiter:
        """Queue one task here (the caller made sure there is room).

        With ``flush=False`` the caller flushes (once for a batch of submissions).
        """
        if self._registry is None:
            raise LocalProtocolError("open_node(..., tasks=registry) to submit tasks")
        registered = self._registry.get(name)
        check_arguments(args, kwargs)
        needs = {**registered.requires, **(requires or {})}
        task = self._pump.new_task(name, args, kwargs, needs)
        waiter = _Waiter(task.id)
        self._waiters[task.id] = waiter
        try:
            self._pump.submit(task)
        except BaseException:
            del self._waiters[task.id]
            raise
        if flush:
            self._pump.flush()
        return waiter

    async def _wait_for_room(self) -> None:
        while not self._pump.can_accept():
            self._queue_space = trio.Event()
            await self._queue_space.wait()

    def _abandon(self, waiter: _Waiter) -> None:
        self._waiters.pop(waiter.task_id, None)
        if not waiter.done.is_set():
            self._pump.cancel_task(waiter.task_id)
            self._pump.flush()

    async def submit(
        self, name: str, args: list[Any], kwargs: dict[str, Any], requires: Mapping[str, str] | None
    ) -> Any:
        """Run one task in the mesh; see :meth:`meshedge.runtime._node.Node.submit`."""
        await self._wait_for_room()
        waiter = self._enqueue(name, args, kwargs, requires)
        try:
            await waiter.done.wait()
        finally:
            self._abandon(waiter)  # synchronous: cancellation cannot interrupt it
        return waiter.result()

    async def map(
        self,
        name: str,
        arguments: Iterable[Any],
        ordered: bool,
        requires: Mapping[str, str] | None,
        return_exceptions: bool = False,
    ) -> AsyncGenerator[Any, None]:
        """Results of many tasks; see :meth:`meshedge.runtime._node.Node.map`.

        A TaskError raised here ends the generator, whose ``finally`` cancels the tasks
        not yet finished; with ``return_exceptions`` it is yielded and nothing stops.
        """
        waiters: list[_Waiter] = []
        finished: trio.MemorySendChannel[_Waiter]
        finished, completions = trio.open_memory_channel[_Waiter](math.inf)
        try:
            await self._submit_all(name, arguments, requires, waiters, finished)
            if ordered:
                for waiter in waiters:
                    await waiter.done.wait()
                    yield waiter.result(return_exceptions)
            else:
                for _ in waiters:
                    waiter = await completions.receive()
                    yield waiter.result(return_exceptions)
        finally:
            for waiter in waiters:
                self._abandon(waiter)

    async def _submit_all(
        self,
        name: str,
        arguments: Iterable[Any],
        requires: Mapping[str, str] | None,
        waiters: list[_Waiter],
        finished: trio.MemorySendChannel[_Waiter],
    ) -> None:
        """Submit ``map``'s tasks, appending each waiter to ``waiters`` (a checkpoint).

        Submits in slices (SUBMIT_SLICE seconds or SUBMIT_BATCH tasks): one flush and
        one checkpoint per slice, so the queue fills in large steps (thieves then take
        large batches: few messages), while between slices thieves are served and
        probes answered.
        """
        pump = self._pump
        slice_end = trio.current_time() + SUBMIT_SLICE
        in_slice = 0
        for argument in arguments:
            if not pump.can_accept():
                pump.flush()
                await self._wait_for_room()
            spread = list(argument) if isinstance(argument, tuple) else [argument]
            waiter = self._enqueue(name, spread, {}, requires, flush=False)
            waiter.notify = finished
            waiters.append(waiter)
            in_slice += 1
            if in_slice >= SUBMIT_BATCH or trio.current_time() >= slice_end:
                pump.flush()
                await trio.lowlevel.checkpoint()
                slice_end = trio.current_time() + SUBMIT_SLICE
                in_slice = 0
        pump.flush()
        await trio.lowlevel.checkpoint()
