#!/usr/bin/env python3
"""A faithful, small re-implementation of the original human-eval harness's execution flow, for
bench/sandbox_throughput.sh to compare `llmforge code-eval` against.

RE-IMPLEMENTED HERE, NOT THE ORIGINAL CODE: pip is not reachable on this project's machines, so
this follows human_eval/execution.py and human_eval/evaluation.py (github.com/openai/human-eval,
MIT) from their public source as published: per sample `check_correctness` starts one
multiprocessing.Process (plus a multiprocessing.Manager list for its result), which makes a
temporary folder, applies `reliability_guard()` (disables os.kill, os.fork, subprocess.Popen,
shutil.rmtree, ...), then `exec`s prompt + completion + "\\n" + test + "\\n" + "check(entry_point)"
under `swallow_io()` and `time_limit(timeout)` (SIGALRM via setitimer); the parent joins with
timeout + 1 s and kills the process if it is still alive. `evaluate_functional_correctness` runs
check_correctness on a ThreadPoolExecutor with n_workers threads (human-eval's default timeout:
3.0 s). The one deliberate change: the `exec` line, which the original ships commented out, is
enabled. Like the original, this is NOT a sandbox (no namespaces, no uid change, no network cut).

Usage: humaneval_harness.py --problems HumanEval.jsonl.gz [--workers N] [--timeout S]
Prints one line: "<passed>/<total> passed in <seconds> s (<programs per second>/s)".
"""
import argparse
import contextlib
import faulthandler
import gzip
import io
import json
import multiprocessing
import os
import platform
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Dict, Optional


class TimeoutException(Exception):
    pass


class WriteOnlyStringIO(io.StringIO):
    """StringIO that throws an exception when it's read from."""

    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


class redirect_stdin(contextlib._RedirectStream):  # type: ignore
    _stream = "stdin"


@contextlib.contextmanager
def time_limit(seconds: float):
    def signal_handler(signum, frame):
        raise TimeoutException("Timed out!")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, signal_handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def swallow_io():
    stream = WriteOnlyStringIO()
    with contextlib.redirect_stdout(stream):
        with contextlib.redirect_stderr(stream):
            with redirect_stdin(stream):
                yield


@contextlib.contextmanager
def chdir(root):
    if root == ".":
        yield
        return
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)


@contextlib.contextmanager
def create_tempdir():
    with tempfile.TemporaryDirectory() as dirname:
        with chdir(dirname):
            yield dirname


def reliability_guard(maximum_memory_bytes: Optional[int] = None):
    """human-eval's guard: disables destructive functions (not a security sandbox)."""
    if maximum_memory_bytes is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (maximum_memory_bytes, maximum_memory_bytes))
        resource.setrlimit(resource.RLIMIT_DATA, (maximum_memory_bytes, maximum_memory_bytes))
        if not platform.uname().system == "Darwin":
            resource.setrlimit(resource.RLIMIT_STACK, (maximum_memory_bytes, maximum_memory_bytes))

    faulthandler.disable()

    import builtins

    builtins.exit = None
    builtins.quit = None

    os.environ["OMP_NUM_THREADS"] = "1"

    os.kill = None
    os.system = None
    os.putenv = None
    os.remove = None
    os.removedirs = None
    os.rmdir = None
    os.fchdir = None
    os.setuid = None
    os.fork = None
    os.forkpty = None
    os.killpg = None
    os.rename = None
    os.renames = None
    os.truncate = None
    os.replace = None
    os.unlink = None
    os.fchmod = None
    os.fchown = None
    os.chmod = None
    os.chown = None
    os.chroot = None
    os.fchdir = None
    os.lchflags = None
    os.lchmod = None
    os.lchown = None
    os.getcwd = None
    os.chdir = None

    import shutil

    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None

    import subprocess

    subprocess.Popen = None  # type: ignore

    import builtins as b

    b.help = None

    import sys

    sys.modules["ipdb"] = None
    sys.modules["joblib"] = None
    sys.modules["resource"] = None
    sys.modules["psutil"] = None
    sys.modules["tkinter"] = None


def unsafe_execute(problem: Dict, completion: str, timeout: float, result):
    with create_tempdir():
        # These system calls are needed when cleaning up tempdir.
        import os as os_
        import shutil

        rmtree = shutil.rmtree
        rmdir = os_.rmdir
        chdir_ = os_.chdir

        reliability_guard()

        check_program = (
            problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
        )
        try:
            exec_globals = {}
            with swallow_io():
                with time_limit(timeout):
                    exec(check_program, exec_globals)
            result.append("passed")
        except TimeoutException:
            result.append("timed out")
        except BaseException as e:
            result.append(f"failed: {e}")

        # Needed for cleaning up.
        shutil.rmtree = rmtree
        os_.rmdir = rmdir
        os_.chdir = chdir_


def check_correctness(problem: Dict, completion: str, timeout: float, completion_id: Optional[int] = None) -> Dict:
    manager = multiprocessing.Manager()
    result = manager.list()

    p = multiprocessing.Process(target=unsafe_execute, args=(problem, completion, timeout, result))
    p.start()
    p.join(timeout=timeout + 1)
    if p.is_alive():
        p.kill()

    if not result:
        result.append("timed out")

    out = dict(task_id=problem["task_id"], passed=result[0] == "passed", result=result[0], completion_id=completion_id)
    manager.shutdown()
    return out


def read_problems(path: str):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", required=True)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()
    problems = read_problems(a.problems)
    t0 = time.monotonic()
    passed = 0
    with ThreadPoolExecutor(max_workers=a.workers) as ex:
        futures = [ex.submit(check_correctness, p, p["canonical_solution"], a.timeout, i) for i, p in enumerate(problems)]
        for fut in as_completed(futures):
            passed += fut.result()["passed"]
    s = time.monotonic() - t0
    print(f"{passed}/{len(problems)} passed in {s:.2f} s ({len(problems) / s:.1f}/s)")


if __name__ == "__main__":
    main()
