"""A warm process that runs `python -m <command>` cases as forks of itself.

Starting a layoutnet command costs seconds of imports (torch, Lightning, Hydra, coremltools) before it
does anything; the refusal table runs dozens of commands that each stop at their first check. The
zygote pays the imports once: it is started as a fresh interpreter (it never runs a tensor operation,
so forking it is safe for torch's thread pools), imports the command modules' dependencies, then for
each request forks a child that runs the command exactly as `python -m` would (`runpy` with
`sys.argv`), its stdout/stderr going to files, and reports the child's exit status.

`conftest.run_module` uses it by default. Tests about what a command imports, how fast it starts, what
the interpreter's own warnings look like, or that start other processes from `sys.argv` (DDP, submitit,
parallel launchers) pass `fresh=True` and get a real subprocess.

Protocol (one JSON object per line): request `{"module", "args", "cwd", "env", "stdout", "stderr",
"timeout"}` and optionally `"stdin"` (a file the command reads as its stdin; else /dev/null), answer
`{"returncode"}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import signal
import sys
import time
import traceback

# Third-party libraries only: layoutnet's own modules are imported by each command as a fresh process
# would, so a command that relies on another module's import side effects (a Hydra ConfigStore entry,
# a registry) still fails here as it would for a user.
WARM_IMPORTS = (
    "numpy",
    "torch",
    "pytorch_lightning",
    "torchmetrics",
    "hydra",
    "omegaconf",
    "coremltools",
    "matplotlib.pyplot",
    "rich.console",
)


def _run_child(request: dict) -> None:
    """In the forked child: become `python -m <module> <args>` and exit with its status."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.update(request.get("env") or {})
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
            os.close(handle)
        stdin = os.open(request.get("stdin") or os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        sys.argv = [request["module"], *request["args"]]
        sys.path[0] = os.getcwd()  # what `python -m` puts first: the directory it was started in
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the child is exiting anyway
                stream.flush()
        os._exit(code)


def _serve() -> None:
    for name in WARM_IMPORTS:
        __import__(name)
    out = sys.stdout
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        deadline = time.monotonic() + float(request.get("timeout", 300))
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = None
                break
            time.sleep(0.02)
        returncode = None if status is None else os.waitstatus_to_exitcode(status)
        print(json.dumps({"returncode": returncode}), file=out, flush=True)


if __name__ == "__main__":
    _serve()
