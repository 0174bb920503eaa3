"""Task registry: which functions this node runs for the mesh, and how.

Every node that should run a task registers the function under the same name. Nothing
is ever unpickled from the network: a task travels as its name and plain CBOR
arguments, and its result comes back as plain CBOR data. Running them is the task
runner's part (``meshedge.runtime._task_runner``).
"""

from __future__ import annotations

import ast
import functools
import inspect
import multiprocessing
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, overload

from .._errors import LocalProtocolError, MeshError
from .._identity import NodeId
from ..wire._cbor import CborError, check_plain

__all__ = [
    "RegisteredTask",
    "TaskError",
    "TaskKind",
    "TaskRegistry",
    "UnknownTaskError",
    "check_not_reimporting_main",
    "unguarded_main",
]

#: How a task runs: as a trio task, in a worker thread, or in a worker process.
TaskKind = Literal["async", "thread", "process"]
F = TypeVar("F", bound=Callable[..., Any])
#: Nesting allowed in task arguments and results (as for message bodies).
MAX_DEPTH: Final = 16
#: What to do about a script that a process task's worker re-runs.
MAIN_GUARD_ADVICE: Final = (
    'put trio.run(main) under `if __name__ == "__main__":`; a worker process of a '
    'kind="process" task imports the main module again, and runs whatever it does '
    "outside that guard"
)


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
        check_plain(args, MAX_DEPTH)
        check_plain(kwargs, MAX_DEPTH)
    except CborError as exc:
        raise LocalProtocolError(f"task arguments must be plain CBOR data: {exc}") from None


def check_not_reimporting_main() -> None:
    """Refuse to open a node while a worker process re-imports the main module.

    A "spawn" or "forkserver" worker (``kind="process"`` tasks) imports the main module
    before it runs anything; multiprocessing marks that phase with the
    ``_inheriting`` flag of the current process, which it checks itself before it
    refuses to start a process. A node opened then is the script's own node started a
    second time, by code outside an ``if __name__ == "__main__":`` guard.

    Raises:
        LocalProtocolError: this process is such a worker, importing the main module.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise LocalProtocolError(
            f"a node was opened while a worker process imports the main module: {MAIN_GUARD_ADVICE}"
        )


@functools.cache
def unguarded_main() -> str | None:
    """Why worker processes cannot run tasks for this program, or None if they can.

    A worker process re-runs the main module's top level. A script that calls
    ``trio.run`` there, outside any ``if __name__ ...`` block, would start its node a
    second time inside every worker (which then dies). Only the source of the main
    module is read; it is checked once per process.
    """
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None  # an interactive session, or a frozen or compiled program
    try:
        with open(path, encoding="utf-8") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(statement, ast.If) and "__name__" in ast.unparse(statement.test):
            continue
        if any(_calls_trio_run(node) for node in ast.walk(statement)):
            return f"{path} calls trio.run at line {statement.lineno}: {MAIN_GUARD_ADVICE}"
    return None


def _calls_trio_run(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    target = node.func
    return target.attr == "run" and isinstance(target.value, ast.Name) and target.value.id == "trio"
