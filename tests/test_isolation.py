"""The child processes that run targets: their output is captured, never printed; they die with
their parent, quietly. Each test runs a real parent process (a script in tmp_path) with real
children and real runtimes (ort:cpu, the defect:crash and defect:hang controls)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import conformance
from conformance.spec import PACK_DIR

ROOT = Path(conformance.__file__).resolve().parents[1]  # the code under test (also /tmp/before)
# The transformer's TorchScript export bakes the sequence length into a Reshape: ORT fails it on
# the second sequence length and logs a red [E:onnxruntime:...] line on stderr while doing so.
FAILING_ARTIFACT = PACK_DIR / "transformer_encoder" / "torch-script"
BOUND_S = 60.0  # a bound on waits for processes, never a measured duration


def run_script(tmp_path: Path, body: str, **kwargs: object) -> subprocess.Popen[str]:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env["CONFORMANCE_DEFECT_MARKERS"] = str(tmp_path)  # the controls touch <kind>.running
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[call-overload]
    )


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], bound_s: float = BOUND_S) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_runtimes_stderr_goes_to_take_stderr_not_to_the_terminal(tmp_path):
    parent = run_script(
        tmp_path,
        f"""
        import json
        from pathlib import Path
        from conformance.isolation import IsolatedTarget
        from conformance.pack.load import Pack
        from conformance.targets.interface import TargetError

        def main():
            pack = Pack(Path({str(PACK_DIR)!r}))
            model = next(m for m in pack.models if m.name == "transformer_encoder")
            artifact = next(a for a in model.artifacts if a.exporter == "torch-script")
            target = IsolatedTarget("ort:cpu", 120)
            target.load(artifact.path)
            target.run(dict(artifact.inputs(0)))
            first = target.take_stderr()
            try:
                target.run(dict(artifact.inputs(2)))
                error = ""
            except TargetError as caught:
                error = str(caught)
            failed = target.take_stderr()
            again = target.take_stderr()
            target.close()
            print(json.dumps({{"first": first, "error": error, "failed": failed, "again": again}}))

        if __name__ == "__main__":
            main()
        """,
    )
    out, err = parent.communicate(timeout=BOUND_S * 3)
    assert parent.returncode == 0, err[-3000:]
    assert "onnxruntime" not in err and "\x1b[" not in err, err  # the terminal stays the suite's
    seen = json.loads(out)
    assert "Reshape" in seen["error"]
    assert "[E:onnxruntime:" in seen["failed"] and "Reshape" in seen["failed"]
    assert "\x1b[" not in seen["failed"]  # colour codes removed
    assert "[E:onnxruntime:" not in seen["first"]  # only what the failing request wrote
    assert seen["again"] == ""  # taken once


def test_what_a_crashing_child_wrote_is_kept_and_the_limit_holds(tmp_path):
    parent = run_script(
        tmp_path,
        """
        import json, os, sys
        from pathlib import Path
        from conformance import isolation
        from conformance.pack.load import Pack
        from conformance.isolation import ChildCrashed, ChildProcess, IsolatedTarget

        def noisy(conn):
            def handle(request, payload):
                sys.stderr.write("x" * 50_000 + "the last words before the abort\\n")
                sys.stderr.flush()
                os.abort()
            isolation.serve_requests(conn, handle)

        def main():
            child = ChildProcess(noisy, ())
            try:
                child.ask("go", None, 60)
            except ChildCrashed as error:
                crashed = str(error)
            text = child.take_stderr()
            pack = Pack(Path(%r))
            artifact = pack.models[0].artifacts[0]
            target = IsolatedTarget("defect:crash", 60)
            target.load(artifact.path)
            try:
                target.run(dict(artifact.inputs(0)))
            except ChildCrashed as error:
                control = str(error)
            target.close()
            print(json.dumps({"crashed": crashed, "text": text, "control": control,
                              "limit": isolation.STDERR_LIMIT_CHARS}))

        if __name__ == "__main__":
            main()
        """
        % str(PACK_DIR),
    )
    out, err = parent.communicate(timeout=BOUND_S * 3)
    assert parent.returncode == 0, err[-3000:]
    assert "x" * 100 not in err and "last words" not in err
    seen = json.loads(out)
    assert "died" in seen["crashed"] and "died" in seen["control"]
    text = seen["text"]
    assert len(text) == seen["limit"]  # the end is kept: the last words and where it died
    assert "the last words before the abort\n" in text
    assert "Fatal Python error: Aborted" in text and "in handle" in text


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads children from /proc")
@pytest.mark.parametrize("target", ["defect:hang", "answers-after-parent-died"])
def test_a_child_does_not_outlive_a_terminated_parent_and_prints_no_traceback(tmp_path, target):
    """SIGTERM to the parent alone (as `kill <pid>` or a CI runner sends it): the child, hanging
    in a runtime or about to answer, must go too, without a BrokenPipe traceback."""
    parent = run_script(
        tmp_path,
        f"""
        import os, sys, time
        from pathlib import Path
        from conformance import isolation
        from conformance.pack.load import Pack
        from conformance.isolation import ChildProcess, IsolatedTarget

        def late(conn, parent_pid):
            def handle(request, payload):
                Path("late.running").touch()
                while os.getppid() == parent_pid:
                    time.sleep(0.05)
                return "too late"
            isolation.serve_requests(conn, handle)

        def main():
            if {target!r} == "defect:hang":
                artifact = Pack(Path({str(PACK_DIR)!r})).models[0].artifacts[0]
                child = IsolatedTarget("defect:hang", 3600)
                child.load(artifact.path)
                ask = lambda: child.run(dict(artifact.inputs(0)))
            else:
                child = ChildProcess(late, (os.getpid(),))
                ask = lambda: child.ask("go", None, 3600)
            print("ready", flush=True)
            ask()

        if __name__ == "__main__":
            main()
        """,
    )
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == "ready"
    children = children_of(parent.pid)
    assert children, "the parent has a child process"
    marker = tmp_path / ("hang.running" if target == "defect:hang" else "late.running")
    try:
        # The child is inside the request (hanging, or about to answer a dead parent).
        assert wait_until(marker.exists), "the child never started the request"
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=BOUND_S)
        assert wait_until(lambda: not any(alive(pid) for pid in children)), "the child outlived it"
        _, err = parent.communicate(timeout=BOUND_S)
        assert "Traceback" not in err and "BrokenPipe" not in err, err[-3000:]
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_ctrl_c_is_the_parents_to_handle(tmp_path):
    """SIGINT to the whole process group (Ctrl-C): the child keeps serving, the parent decides."""
    parent = run_script(
        tmp_path,
        """
        import signal, sys
        from conformance.isolation import ChildProcess, serve_requests

        def echo(conn):
            serve_requests(conn, lambda request, payload: payload)

        def main():
            # A handler, not SIG_IGN: an ignored signal would be inherited by the child.
            signal.signal(signal.SIGINT, lambda number, frame: None)
            child = ChildProcess(echo, ())
            print("ready", flush=True)
            sys.stdin.readline()
            print(child.ask("echo", "still serving", 60), child.take_stderr() == "", flush=True)
            child.close()

        if __name__ == "__main__":
            main()
        """,
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    assert parent.stdout is not None and parent.stdin is not None
    assert parent.stdout.readline().strip() == "ready"
    os.killpg(parent.pid, signal.SIGINT)
    # Lets the signal land before the request; what is asserted holds whatever the timing.
    time.sleep(0.5)
    out, err = parent.communicate("\n", timeout=BOUND_S)
    assert parent.returncode == 0, err[-3000:]
    assert out.strip() == "still serving True"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


class Clock:
    """A settable clock: the progress lines depend on elapsed time, the test must not."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_off_a_terminal_prints_a_line_every_interval_and_one_at_the_end():
    from conformance.progress import Progress

    lines: list[str] = []
    clock = Clock()
    progress = Progress(10, "checks", lines.append, tty=False, interval_s=5.0, clock=clock)
    for i in range(10):
        clock.now += 1.0
        progress.advance(f"mlp-set{i}-ort:cpu")
    progress.close()
    progress.close()  # idempotent
    assert lines == [
        "checks: 5/10 (5s, about 5s left) mlp-set4-ort:cpu",
        "checks: 10/10 (10s) mlp-set9-ort:cpu",
        "checks: 10/10 done in 10s",
    ]


def test_progress_escapes_its_detail_and_draws_a_bar_on_a_terminal(tmp_path):
    from conformance.progress import Progress

    lines: list[str] = []
    with (tmp_path / "tty").open("w+", newline="") as stream:
        with Progress(4, "checks", lines.append, tty=True, stream=stream) as progress:
            progress.advance("\x1b[2Jforged")
            progress.advance("b")
        stream.seek(0)
        drawn = stream.read()
    assert lines == []  # the bar does not go through echo
    assert "\x1b" not in drawn and "forged" in drawn
    assert drawn.count("\r") == 3 and drawn.endswith("\n")
    assert "checks [" + "#" * 12 + "-" * 12 + "] 2/4" in drawn


def test_native_stderr_in_the_clis_own_process_is_captured_for_the_block_only(tmp_path):
    """TensorFlow's absl start-up lines ignore TF_CPP_MIN_LOG_LEVEL: importing it under
    native_stderr_captured keeps them off the terminal and hands them to the caller."""
    tensorflow = importlib.util.find_spec("tensorflow") is not None
    parent = run_script(
        tmp_path,
        f"""
        import json, os
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from conformance.isolation import native_stderr_captured

        with native_stderr_captured() as captured:
            os.write(2, b"native chatter\\n")
            if {tensorflow!r}:
                import tensorflow
        os.write(2, b"after the block\\n")
        print(json.dumps(captured))
        """,
    )
    out, err = parent.communicate(timeout=BOUND_S * 3)
    assert parent.returncode == 0, err[-3000:]
    assert err == "after the block\n"
    (captured,) = json.loads(out)
    assert captured.startswith("native chatter\n")
    if tensorflow:
        assert "absl" in captured or "I0000" in captured  # it did print, and was captured


def test_an_adapter_error_stays_one_across_the_pipe(tmp_path):
    """An adapter's bug (AdapterError) must reach the parent as AdapterError, so the check is
    not recorded as the runtime's finding; any other failure stays a TargetError."""
    parent = run_script(
        tmp_path,
        """
        import json
        from conformance.isolation import ChildProcess, serve_requests
        from conformance.targets.interface import AdapterError, TargetError

        def broken(conn):
            def handle(request, payload):
                if request == "adapter":
                    raise AdapterError("Session.__init__ was not called")
                raise ValueError("the runtime said no")
            serve_requests(conn, handle)

        def main():
            child = ChildProcess(broken, ())
            seen = {}
            for request in ("adapter", "runtime"):
                try:
                    child.ask(request, None, 60)
                except TargetError as error:
                    seen[request] = [type(error).__name__, str(error)]
            child.close()
            print(json.dumps(seen))

        if __name__ == "__main__":
            main()
        """,
    )
    out, err = parent.communicate(timeout=BOUND_S * 3)
    assert parent.returncode == 0, err[-3000:]
    assert json.loads(out) == {
        "adapter": ["AdapterError", "Session.__init__ was not called"],
        "runtime": ["TargetError", "ValueError: the runtime said no"],
    }


@pytest.mark.parametrize(
    ("control", "verdict", "said"),
    [
        ("defect:crash", "crashed", "Fatal Python error: Aborted"),
        ("defect:hang", "timed-out", "in _hang"),
    ],
)
def test_the_record_of_a_crashed_or_hung_check_says_where_the_runtime_was(
    tmp_path, control, verdict, said
):
    """`conformance run` on the crash and hang controls: each record carries what the child
    wrote as it died (the fault handler's stack down to the aborting call) or, before a hung
    child is killed, the stacks it was asked for; nothing of it reaches the terminal."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--target", control, "--timeout", "10"]
        + ["--model", "mlp", "--exporter", "torch-script", "--out", str(run_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=BOUND_S * 5,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Fatal Python error" not in result.stdout + result.stderr
    assert "Thread 0x" not in result.stdout + result.stderr
    checks = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["checks"]
    assert checks and all(c["verdict"] == verdict for c in checks)
    for check in checks:
        assert said in check.get("stderr", ""), check
        assert "defects.py" in check["stderr"]  # the control's own frame


def test_children_take_the_parents_environment_as_it_is_when_they_start(tmp_path):
    """Children are forks of a fork server started once: its environment is from its start,
    yet each child must see the parent's as it is now (the run folder's artifacts folder, the
    compile-cache bypass are set after the first child). No runtime is imported in the server
    (a fork of a process holding a runtime's threads is unsafe)."""
    parent = run_script(
        tmp_path,
        """
        import os, sys
        from conformance.isolation import ChildProcess, serve_requests

        def report(conn):
            runtimes = ("onnxruntime", "openvino", "iree.runtime", "tract", "torch")
            serve_requests(conn, lambda request, payload: (
                os.environ.get("H5_PROBE"), [m for m in runtimes if m in sys.modules]
            ))

        def main():
            import onnxruntime  # the parent may hold a runtime: the children must not
            os.environ["H5_PROBE"] = "first"
            first = ChildProcess(report, ())
            os.environ["H5_PROBE"] = "second"
            second = ChildProcess(report, ())
            print(first.ask("env", None, 60), second.ask("env", None, 60), flush=True)
            first.close()
            second.close()

        if __name__ == "__main__":
            main()
        """,
    )
    out, err = parent.communicate(timeout=BOUND_S)
    assert parent.returncode == 0, err[-3000:]
    assert out.strip() == "('first', []) ('second', [])", out


def test_a_child_closed_from_two_threads_at_once_closes_once(tmp_path):
    """Ctrl-C while checks run side by side: the main thread closes every child while the
    worker waiting on it wakes to the death and closes it too (seen in CI: EBADF from the
    second close of the pipe, exit 1 instead of 130). Either order, no error; the pipe's
    descriptor is closed once (a second close could hit a descriptor reused meanwhile)."""
    parent = run_script(
        tmp_path,
        """
        import json, threading, time
        from conformance.isolation import ChildProcess, serve_requests
        from conformance.targets.interface import TargetError

        def hang(conn):
            serve_requests(conn, lambda request, payload: time.sleep(3600))

        def main():
            unexpected = []
            for _ in range(12):
                child = ChildProcess(hang, ())
                def ask():
                    try:
                        child.ask("hang", None, 600)
                    except TargetError:
                        pass  # the child died under it: the worker's expected answer
                    except BaseException as error:
                        unexpected.append(f"worker: {type(error).__name__}: {error}")
                worker = threading.Thread(target=ask)
                worker.start()
                time.sleep(0.2)  # the worker waits on the pipe now
                closers = [threading.Thread(target=child.close) for _ in range(3)]
                try:
                    for closer in closers:
                        closer.start()
                    child.close()
                except BaseException as error:
                    unexpected.append(f"main: {type(error).__name__}: {error}")
                for thread in (*closers, worker):
                    thread.join(60)
            print(json.dumps(unexpected))

        if __name__ == "__main__":
            main()
        """,
    )
    out, err = parent.communicate(timeout=BOUND_S * 3)
    assert parent.returncode == 0, err[-3000:]
    assert json.loads(out) == [], out
    assert "Traceback" not in err, err[-3000:]  # a closer thread's error lands on stderr
