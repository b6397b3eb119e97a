"""Faults injected into a worker process (imported at start-up when this directory is
on the worker's PYTHONPATH; see tests/integration/test_liveness.py).

``CERTFLOW_TEST_FAULT=coordination``: aiokafka's group coordination ends with an
error once the file ``CERTFLOW_TEST_FAULT_TRIGGER`` exists.
``CERTFLOW_TEST_FAULT=recovery``: Faust's table recovery raises.
``CERTFLOW_TEST_FAULT=flush``: once the trigger file exists, the producer's flush
never returns (a record that is never delivered), so the next rebalance's
"partitions revoked" step, which flushes, never ends.
"""

import asyncio
import os
from pathlib import Path

FAULT = os.environ.get("CERTFLOW_TEST_FAULT")
TRIGGER = Path(os.environ.get("CERTFLOW_TEST_FAULT_TRIGGER", "/nonexistent"))

if FAULT == "coordination":
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    original_routine = GroupCoordinator._coordination_routine

    async def failing_routine(self):  # type: ignore[no-untyped-def]
        routine = asyncio.ensure_future(original_routine(self))
        while not TRIGGER.exists():
            if routine.done():
                return await routine
            await asyncio.sleep(0.2)
        routine.cancel()
        raise RuntimeError("injected fault: group coordination died")

    GroupCoordinator._coordination_routine = failing_routine

elif FAULT == "recovery":
    from faust.tables.recovery import Recovery

    async def failing_build_offsets(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("injected fault: table recovery crashed")

    Recovery._build_offsets = failing_build_offsets

elif FAULT == "flush":
    from certflow.faust_fixes.transport import Producer

    original_flush = Producer.flush

    async def flush_never_delivered(self):  # type: ignore[no-untyped-def]
        if TRIGGER.exists():
            await asyncio.Event().wait()
        await original_flush(self)

    Producer.flush = flush_never_delivered
