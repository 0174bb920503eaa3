"""The work-stealing core: idle nodes steal queued tasks; results go home; nothing is lost.

Sans-I/O like the membership core: inputs return nothing (:meth:`WorkStealing.submit`,
:meth:`WorkStealing.receive`, :meth:`WorkStealing.task_done`,
:meth:`WorkStealing.member_changed`, :meth:`WorkStealing.handle_timer`); outputs are
pulled (:meth:`WorkStealing.tasks_to_start`, :meth:`WorkStealing.tasks_to_cancel`,
:meth:`WorkStealing.messages_to_send`, :meth:`WorkStealing.next_event`,
:meth:`WorkStealing.get_timer`).

The model:

* A task made by :meth:`WorkStealing.new_task` and submitted enters the queue of its
  *origin* node, which remembers it until its result arrives (:mod:`.queue`).
* A node with free slots and too little queued work sends a STEAL request to a victim
  chosen at random among members advertising queued work (LOAD datagrams, at most every
  ``load_interval``), weighted by queue length and by measured round-trip time. It asks
  again before it runs dry, so that idle gaps stay far below a task's length
  (:mod:`.victims`, :mod:`.adverts`).
* The victim hands over up to half of its queued tasks, oldest first, and only tasks
  whose requirements the thief's tags satisfy.
* A node holding another origin's task (queued or running) holds a *lease* on it,
  renewed every ``lease_timeout / 3``. The origin queues the task again when the holder
  is declared dead or the lease runs out: execution is at-least-once; the origin keeps
  the first result and drops duplicates, so the caller sees exactly one (:mod:`.leases`).
* Results go straight to the origin, batched for up to ``result_delay`` while more
  tasks run here (at once when this node runs out of work, or for long tasks)
  (:mod:`.results`).
* When an origin dies its tasks have nobody to report to: holders drop them.

:class:`WorkStealing` (:mod:`.core`) composes these parts behind one driving contract;
:class:`StealingTiming` (:mod:`.timing`) holds every period and bound.
"""

from ...wire.bodies import Task
from .core import WorkStealing
from .messages import Outgoing
from .tasks import TASK_ID_SIZE, TaskFinished, TaskOutcome, requirements_met
from .timing import StealingTiming
from .victims import ROUND_TRIP_SAMPLES

__all__ = [
    "ROUND_TRIP_SAMPLES",
    "TASK_ID_SIZE",
    "Outgoing",
    "StealingTiming",
    "Task",
    "TaskFinished",
    "TaskOutcome",
    "WorkStealing",
    "requirements_met",
]
