"""Fork real service processes fast: imports and the bundle load once, then one fork per start.

Usage: ``python server_zygote.py BUNDLE PORT LOG``. Each line ``start`` on stdin forks a
child that serves BUNDLE with the app of ``vitalsentry serve`` on 127.0.0.1:PORT
(settings from the environment), logging to LOG, and prints the child's pid. The kill
tests SIGKILL the children; this process reaps them and exits when stdin closes. Forking
skips the seconds of importing torch, scikit-learn and FastAPI and of verifying the
bundle at every restart; nothing has run the model before the fork.
"""

from __future__ import annotations

import gc
import os
import sys

import uvicorn

from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.app import create_app, log_config
from vitalsentry.serve.settings import load_settings


def serve(pipeline: VitalRiskPipeline, port: int, log: str) -> None:
    """Run one server (in the forked child) until it is killed."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for fd in (1, 2):  # the pipe to the test carries pids only
        os.dup2(out, fd)
    app = create_app(load_settings(), pipeline=pipeline)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=log_config(), access_log=False)


def main() -> None:
    bundle, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pipeline = VitalRiskPipeline.from_bundle(bundle)
    gc.collect()
    gc.freeze()  # children share these pages, and their start-up collection skips them
    for line in sys.stdin:
        if line.strip() != "start":
            continue
        pid = os.fork()
        if pid == 0:
            serve(pipeline, port, log)
            os._exit(0)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
        while True:  # reap children killed so far
            try:
                done, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if done == 0:
                break


if __name__ == "__main__":
    main()
