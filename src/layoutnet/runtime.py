"""How a command behaves on a real machine: torch's thread counts, and SIGINT/SIGTERM handling.

Nothing here imports Lightning: evaluate, export and validate apply the same `runtime` settings.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from layoutnet.errors import ConfigError

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- threads


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def scheduler_share() -> int | None:
    """The CPU share a scheduler or launcher gave this process, if it said so: SLURM's
    `SLURM_CPUS_PER_TASK`, or `OMP_NUM_THREADS` (set per worker by joblib's loky backend and by
    users who know their machine)."""
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def idle_cores() -> int:
    """Cores nobody else is using now: this process's cores minus the 1-minute load average, at least 1."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return 1
    return _cores_from(available_cores(), load)


def _cores_from(cores: int, others: float) -> int:
    """Threads for `cores` cores of which other processes use `others` (rounded, at least 1)."""
    return max(1, min(cores, int(cores - others + 0.5)))


def resolve_threads(value: Any, key: str = "runtime.threads") -> int:
    """`auto` -> the scheduler's share when one was given, else the cores idle at start (see
    BENCHMARKS.md, "Threads": more threads than free cores made a step 2-20x slower, fewer than the
    idle cores left 1.4-1.8x on the table); `all` -> every core this process may run on; a positive
    integer -> that many."""
    if value is None or value == "auto":
        return scheduler_share() or idle_cores()
    if value == "all":
        return available_cores()
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not str(value).isdigit()
        or int(value) < 1
    ):
        raise ConfigError(key, value, "must be auto, all or a positive integer")
    return int(value)


def set_threads(threads: int) -> None:
    """torch's intra-op threads and NumPy's BLAS threads (the reference executor's matrix products)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")


def adapts(settings: Any) -> bool:
    """Whether `runtime.threads` follows the machine's load during a run: `auto` without a
    scheduler's share (a share is the scheduler's word, kept as given)."""
    return (settings or {}).get("threads", "auto") in (None, "auto") and scheduler_share() is None


def apply_threads(settings: Any) -> dict[str, Any]:
    """Set torch's intra-op and inter-op thread counts, and NumPy's BLAS threads, from a `runtime`
    config node (or None: the defaults). Must run before torch does any parallel work (inter-op
    threads can be set once). `adaptive`: a training run re-decides the count as the load changes
    (`ThreadGovernor`)."""
    import torch

    settings = settings or {}
    threads = resolve_threads(settings.get("threads", "auto"))
    interop = resolve_threads(settings.get("interop_threads", 1), "runtime.interop_threads")
    set_threads(threads)
    try:
        torch.set_num_interop_threads(interop)
    except RuntimeError:  # already started (a second run in the same process): keep torch's value
        interop = torch.get_num_interop_threads()
    return {"threads": threads, "interop_threads": interop, "adaptive": adapts(settings)}


PROC_STAT = Path("/proc/stat")


def _cpu_seconds_of(cpus: set[int]) -> float | None:
    """CPU seconds every process on the machine has spent on the CPUs `cpus` since boot (Linux's
    /proc/stat: all but idle and iowait time), or None where there is no such file, it cannot be
    parsed, or none of its CPU lines is one of `cpus` (a virtualised /proc/stat numbering a container's
    CPUs from 0: the load average is used then)."""
    try:
        lines = PROC_STAT.read_text(encoding="ascii").splitlines()
        ticks, matched = 0, False
        for line in lines:
            name, *fields = line.split() or [""]
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                values = [int(v) for v in fields[:8]]
                ticks += sum(values) - values[3] - values[4]
                matched = True
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK") if matched else None


def others_cores_reader() -> Callable[[float, float], float | None]:
    """A function (wall seconds, own CPU seconds since its previous call) -> the cores other processes
    used meanwhile on this process's CPUs. Linux: from /proc/stat; elsewhere from the 1-minute load
    average minus this process's own recent use (the load average lags by about a minute)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    last = [_cpu_seconds_of(cpus)] if cpus else [None]

    def read(wall: float, own: float) -> float | None:
        if last[0] is not None:
            now = _cpu_seconds_of(cpus)
            if now is None:
                return None
            used, last[0] = now - last[0], now
            return max(0.0, (used - own) / wall)
        try:
            return max(0.0, os.getloadavg()[0] - own / wall)
        except (AttributeError, OSError):
            return None

    return read


class ThreadGovernor:
    """`runtime.threads=auto` during a run: every `interval` seconds, the cores that other processes
    used since the last look decide the thread count (the rule of `idle_cores`, at most `limit`).

    Why (BENCHMARKS.md, "Threads"): the count chosen at start stops fitting when other work starts
    later; two threads on a 2-core machine whose other core got busy ran a training step 8x slower
    than one thread. `poll` is cheap between looks (one clock read): call it every batch.

    Other processes are all processes but this one: a DataLoader worker or another DDP rank counts as
    load (AdaptiveThreads does not adapt a multi-process run)."""

    def __init__(
        self,
        threads: int,
        limit: int | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        own_cpu: Callable[[], float] = time.process_time,
        others: Callable[[float, float], float | None] | None = None,
        apply: Callable[[int], None] = set_threads,
    ):
        self.threads = threads
        self.limit = limit or available_cores()
        self.interval = interval
        self.clock, self.own_cpu, self.apply = clock, own_cpu, apply
        self.others = others or others_cores_reader()
        self.changes: list[dict[str, Any]] = []
        self._since, self._own = clock(), own_cpu()
        self._wanted = threads  # what the previous look wanted

    def poll(self, step: int | None = None, settle: bool = False) -> int | None:
        """The new thread count when it changed (and applied), else None. A change needs two looks in
        a row that want the same count, so a neighbour hovering at a rounding edge does not flip the
        count at every look. `settle` (the end of a fit, before test and export): look now, however
        short the interval, and follow that one look."""
        now = self.clock()
        wall = now - self._since
        if wall < (0.5 if settle else self.interval):
            return None
        own = self.own_cpu()
        others = self.others(wall, own - self._own)
        self._since, self._own = now, own
        if others is None:
            return None
        wanted = _cores_from(self.limit, others)
        previous, self._wanted = self._wanted, wanted
        if wanted == self.threads or (wanted != previous and not settle):
            return None
        log.info("threads %d -> %d: others used %.1f of %d cores", self.threads, wanted, others, self.limit)
        self.apply(wanted)
        self.threads = wanted
        self.changes.append({"step": step, "threads": wanted, "others_cores": round(others, 2)})
        return wanted


# ---------------------------------------------------------------------------------------------- noise

# Third-party messages that tell a layoutnet user nothing they can act on, each matched narrowly (its
# own text, its own logger or warning) so that anything else still shows:
_QUIET_LOG_PREFIXES = (
    "GPU available:",  # hardware inventory at every fit; the header already says cpu/gpu x devices
    "TPU available:",
    "HPU available:",
    "💡 Tip:",  # Lightning's advertisement for its cloud logger
    "Loading `train_dataloader` to estimate number of stepping batches",  # internal step of the LR schedule
)
_QUIET_WARNINGS = (
    # Lightning 2.6 calls a pytree API that torch 2.13 deprecated: Lightning's to fix, not ours.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # Our training stream is an IterableDataset with __len__ loaded in the main process (no workers),
    # the one case where the length is exact.
    r"Your `IterableDataset` has `__len__` defined",
    # Lightning restoring a checkpoint layoutnet wrote itself (ckpt_path=): nothing to choose.
    r"`weights_only` was not set, defaulting to `False`",
)


class _DropMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(_QUIET_LOG_PREFIXES)


def quiet_third_party() -> None:
    import warnings

    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    names = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages())


# ---------------------------------------------------------------------------------------------- signals


class RunInterrupted(BaseException):
    """A run stopped by a signal. BaseException, like KeyboardInterrupt: nothing may swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (SIGINT 130, SIGTERM 143)."""
    return 128 + int(signum)


def submitit_signal() -> int | None:
    """The signal submitit sends before a SLURM time limit or a preemption (USR2 unless configured),
    when this process is a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return int(getattr(signal, f"SIG{name}", signal.SIGUSR2))


def submitit_job_id() -> str | None:
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not a submitit job after all
        return None


class SignalGuard:
    """Turns SIGINT, SIGTERM (and, in a submitit job, its preemption signal) into a clean stop.

    The first signal is recorded. While the training loop runs (`graceful` is on) the loop stops at the
    next batch boundary (layoutnet.callbacks.InterruptCheckpoint raises there) so the final checkpoint
    holds a whole step; anywhere else, or at a second signal, RunInterrupted is raised at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.graceful = False
        self.previous: dict[int, Any] = {}

    def signals(self) -> list[int]:
        extra = submitit_signal()
        return [signal.SIGINT, signal.SIGTERM, *([extra] if extra else [])]

    def install(self) -> None:
        self.signum = None
        self.graceful = False
        for signum in self.signals():
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (a joblib thread backend): leave signals alone
                return

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self.previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if first and self.graceful:
            print(
                f"\n{signal.Signals(signum).name}: stopping after this batch with a checkpoint "
                "(send it again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        raise RunInterrupted(self.signum)

    def pending(self) -> int | None:
        return self.signum

    def hand_over(self) -> None:
        """In a submitit job stopped by its preemption signal: let submitit requeue the job (it exits)."""
        handler = self.previous.get(self.signum) if self.signum is not None else None
        if self.signum == submitit_signal() and callable(handler):
            handler(self.signum, None)


GUARD = SignalGuard()


def resume_command(overrides: Iterable[str], ckpt_path: str | Path, module: str = "layoutnet") -> str:
    """The exact command that continues a run: its overrides (without any ckpt_path) + ckpt_path=."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("ckpt_path=", "hydra.run.dir="))]
    return shlex.join(["python", "-m", module, *kept, f"ckpt_path={ckpt_path}"])
