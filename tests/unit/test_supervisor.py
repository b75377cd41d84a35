"""The stack supervisor with real (small) processes: restarts, giving up, hangs, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from loopml.supervisor import FAILED, RESTARTING, Component, Supervisor
from tests.worker_processes import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]

# A component that starts two children deaf to SIGTERM (as Airflow's LocalExecutor workers
# are), both with an environment that lacks the supervisor's marker (setproctitle clobbers
# it in the real workers): an idle one in the component's process group, and a busy one in
# a session of its own that runs a "task" grandchild. It writes their pids to the folder
# given as argument.
SPAWNER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    out = sys.argv[1]
    env = {k: v for k, v in os.environ.items() if k != "LOOPML_STACK"}
    deaf = "import signal, time, subprocess, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    idle = subprocess.Popen([sys.executable, "-c", deaf + "time.sleep(600)"], env=env)
    busy = subprocess.Popen(
        [sys.executable, "-c", deaf + "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
         "open(sys.argv[1], 'w').write(str(p.pid)); p.wait(); time.sleep(600)", out + "/task"],
        start_new_session=True,
        env=env,
    )
    open(out + "/idle", "w").write(str(idle.pid))
    open(out + "/busy", "w").write(str(busy.pid))
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def make(tmp_path: Path, components: list[Component], **kwargs) -> Supervisor:
    events: list[str] = []
    supervisor = Supervisor(
        components,
        state_file=tmp_path / "stack.json",
        stack_log=tmp_path / "stack.log",
        say=events.append,
        stop_timeout_s=1.0,
        **kwargs,
    )
    supervisor.events = events
    return supervisor


@pytest.fixture
def supervisors():
    started: list[Supervisor] = []
    yield started
    for supervisor in started:
        supervisor.stop()


def test_an_exited_component_is_restarted_with_backoff_and_reported(tmp_path, supervisors):
    flaky = Component("flaky", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "flaky.log")
    steady = Component("steady", SLEEPER, tmp_path / "steady.log")
    supervisor = make(tmp_path, [flaky, steady], max_failures=10)
    supervisors.append(supervisor)
    supervisor.start()
    steady_pid = steady.pid
    delays = []
    for restart in range(1, 4):
        wait_until(lambda: flaky.process.poll() is not None, what="flaky to exit")
        now = time.time()
        supervisor.tick(now)
        assert flaky.health == RESTARTING and flaky.last_exit == "exited with code 3"
        delays.append(flaky.restart_at - now)
        supervisor.tick(flaky.restart_at - 0.01)
        assert flaky.restart_at is not None, "not restarted before its backoff is over"
        supervisor.tick(flaky.restart_at)
        assert flaky.restarts == restart
    assert delays == [1.0, 2.0, 4.0], "exponential backoff"
    assert steady.pid == steady_pid and alive(steady_pid), "the other components are left alone"
    log = (tmp_path / "stack.log").read_text()
    assert log.count("flaky") >= 6 and "exited with code 3; restarting in 2s" in log
    assert any("flaky restarted (restart 3)" in event for event in supervisor.events), "said on the console"
    state = json.loads((tmp_path / "stack.json").read_text())
    assert state["components"]["flaky"]["restarts"] == 3
    assert state["components"]["steady"]["pid"] == steady_pid


def test_a_components_after_start_hook_runs_after_each_start_with_the_new_pid(tmp_path, supervisors):
    started: list[int] = []
    flaky = Component("flaky", SLEEPER, tmp_path / "flaky.log", after_start=started.append)
    supervisor = make(tmp_path, [flaky])
    supervisors.append(supervisor)
    supervisor.start()
    first = flaky.pid
    wait_until(lambda: started == [first], what="the hook after the first start")
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: flaky.process.poll() is not None, what="the component to die")
    supervisor.tick()
    supervisor.tick(flaky.restart_at)
    assert flaky.pid != first
    wait_until(lambda: started == [first, flaky.pid], what="the hook after the restart")


def test_repeated_failures_stop_the_whole_stack_naming_the_component_and_its_log(tmp_path, supervisors):
    flaky = Component("flaky", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "flaky.log")
    steady = Component("steady", SLEEPER, tmp_path / "steady.log")
    supervisor = make(tmp_path, [flaky, steady], max_failures=2)
    supervisors.append(supervisor)
    supervisor.start()
    for _ in range(3):
        wait_until(lambda: flaky.process.poll() is not None, what="flaky to exit")
        supervisor.tick()
        if flaky.restart_at:
            supervisor.tick(flaky.restart_at)
    assert supervisor.done.is_set() and supervisor.status == FAILED
    assert "flaky failed 3 times" in supervisor.failure and str(tmp_path / "flaky.log") in supervisor.failure
    assert not alive(steady.pid), "the whole stack stops"
    state = json.loads((tmp_path / "stack.json").read_text())
    assert state["status"] == "failed" and state["failure"] == supervisor.failure
    assert not supervisor.tracker.processes()


def test_a_component_whose_heartbeat_stops_is_killed_and_restarted(tmp_path, supervisors):
    beats: dict[str, float | None] = {}
    hangs = Component("scheduler", SLEEPER, tmp_path / "scheduler.log", has_heartbeat=True)
    supervisor = make(tmp_path, [hangs], heartbeats=lambda: dict(beats), hang_after_s=30)
    supervisors.append(supervisor)
    supervisor.start()
    first = hangs.pid
    beats["scheduler"] = hangs.started_at + 1
    supervisor.tick(hangs.started_at + 2)
    assert hangs.health == "healthy"
    beats["scheduler"] = None  # the API that reports the heartbeat does not answer: unknown, not hung
    supervisor.tick(hangs.started_at + 100)
    assert alive(first) and hangs.restart_at is None
    beats["scheduler"] = hangs.started_at + 1  # readable again, and old
    supervisor.tick(hangs.started_at + 100)
    assert not alive(first) and hangs.health == RESTARTING
    assert "hung: no heartbeat" in hangs.last_exit
    assert any("sent no heartbeat" in event for event in supervisor.events)
    supervisor.tick(hangs.restart_at)
    assert hangs.pid != first and alive(hangs.pid) and hangs.restarts == 1


def test_no_process_is_left_behind_even_when_a_component_was_sigkilled_first(tmp_path, supervisors):
    """The scheduler case: its executor workers outlive it, ignore SIGTERM and sit in their own sessions."""
    pids = tmp_path / "pids"
    pids.mkdir()
    spawner = Component(
        "scheduler", [sys.executable, "-c", SPAWNER, str(pids)], tmp_path / "s.log", keeps_busy_leftovers=True
    )
    supervisor = make(tmp_path, [spawner])
    supervisors.append(supervisor)
    supervisor.start()
    wait_until(lambda: all((pids / n).exists() and (pids / n).read_text() for n in ("idle", "busy", "task")))
    idle, busy, task = (int((pids / n).read_text()) for n in ("idle", "busy", "task"))
    supervisor.tick()  # sees the busy child (own session, no marker) while its parent lives
    first = spawner.pid
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: spawner.process.poll() is not None)
    supervisor.tick()
    assert not alive(idle), "an idle leftover of the dead component is ended at once"
    assert alive(busy) and alive(task), "a leftover still running a task is left to finish it"
    supervisor.tick(spawner.restart_at)
    assert spawner.pid != first and spawner.restarts == 1
    os.kill(task, signal.SIGKILL)  # the task ends: its worker is idle now
    wait_until(lambda: not alive(task))
    wait_until(lambda: (supervisor.tick(), not alive(busy))[1], what="the idle worker to be reaped")
    wait_until(lambda: all((pids / n).read_text() != str(p) for n, p in (("idle", idle), ("busy", busy))))
    new = [int((pids / n).read_text()) for n in ("idle", "busy")]
    wait_until(lambda: (pids / "task").read_text() != str(task))
    new.append(int((pids / "task").read_text()))
    assert all(alive(pid) for pid in new)
    supervisor.tick()
    os.kill(spawner.pid, signal.SIGKILL)  # the restarted generation dies too, then the stack is stopped
    supervisor.stop()
    assert not any(alive(pid) for pid in [spawner.pid, *new]), "stop ends children of a dead component"
    assert not supervisor.tracker.processes()


# A component that, on SIGTERM, waits for a child deaf to SIGTERM before it exits (as
# Airflow's triggerer waits for its trigger runner), and one that records on SIGTERM
# whether the pid in argv[2] (the "server" it calls) was still alive.
WAITS_FOR_DEAF_CHILD = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    signal.signal(signal.SIGTERM, lambda *a: (child.wait(), sys.exit(0)))
    open(sys.argv[1], "w").write("ready")
    time.sleep(600)
    """
)
RECORDS_SERVER_ALIVE = textwrap.dedent(
    """
    import os, signal, sys, time
    def on_term(*a):
        time.sleep(0.5)  # a clean shutdown that still calls the server for a moment
        try:  # a dead child not yet reaped is a zombie ("Z"): gone too
            stat = open(f"/proc/{int(open(sys.argv[2]).read())}/stat").read()
            alive = "gone" if stat.rsplit(")", 1)[1].split()[0] == "Z" else "alive"
        except (OSError, ValueError):
            alive = "gone"
        open(sys.argv[1], "w").write(alive)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    open(sys.argv[1] + ".ready", "w").write("ready")
    time.sleep(600)
    """
)


def test_a_component_past_its_stop_grace_has_its_children_killed_so_the_stop_is_quick(tmp_path, supervisors):
    ready = tmp_path / "ready"
    slow = Component(
        "slow", [sys.executable, "-c", WAITS_FOR_DEAF_CHILD, str(ready)], tmp_path / "slow.log", stop_grace_s=0.5
    )
    supervisor = make(tmp_path, [slow])
    supervisor.stop_timeout_s = 30.0  # without the grace, the stop would wait this long and then kill
    supervisors.append(supervisor)
    supervisor.start()
    wait_until(ready.exists, timeout_s=30, what="the component's SIGTERM handler")
    started = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - started < 10
    assert slow.process.poll() == 0  # it exited by itself once its child was gone


def test_a_server_the_others_call_is_stopped_after_them(tmp_path, supervisors):
    server = Component("server", SLEEPER, tmp_path / "server.log", stop_last=True)
    verdict, server_pid = tmp_path / "verdict", tmp_path / "server.pid"
    client = Component(
        "client", [sys.executable, "-c", RECORDS_SERVER_ALIVE, str(verdict), str(server_pid)], tmp_path / "client.log"
    )
    supervisor = make(tmp_path, [server, client])
    supervisors.append(supervisor)
    supervisor.start()
    wait_until(lambda: server.pid is not None, timeout_s=30, what="the server")
    server_pid.write_text(str(server.pid))
    wait_until(Path(f"{verdict}.ready").exists, timeout_s=30, what="the client's SIGTERM handler")
    supervisor.stop()
    assert verdict.read_text() == "alive"
