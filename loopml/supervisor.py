"""Keep a set of long-running processes alive, and leave none of them behind.

Airflow ships no supervisor of its own for a one-machine stack (`airflow standalone` is a
development toy that neither restarts a dead scheduler nor cleans up after it), so this
module is one, kept small:

- every component runs in its own session/process group, and carries an environment marker
  (`LOOPML_STACK=<stack id>/<component>/<generation>`) that all its descendants inherit, even
  those that start sessions of their own or outlive their parent (Airflow's LocalExecutor
  workers are children of the scheduler and ignore SIGTERM);
- a component that exits is restarted with exponential backoff; after `max_failures` exits
  within `failure_window_s` the whole stack is stopped with a message naming the component
  and its log file;
- a component with a heartbeat (the scheduler, via Airflow's health API) that stops beating
  for `hang_after_s` is killed and restarted like one that exited;
- stopping ends every process carrying the marker: SIGTERM first, SIGKILL after a timeout.

The state (pids, uptimes, restarts, health) is written to a JSON file for `loopml status`,
and every event goes to the console and to a stack log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from loopml.processes import kill, terminate

MARKER = "LOOPML_STACK"

#: health values a component can have in the state file
STARTING, HEALTHY, RESTARTING, HUNG, FAILED, STOPPED = "starting", "healthy", "restarting", "hung", "failed", "stopped"


@dataclass
class Component:
    """One supervised process: how to start it and what the supervisor knows about it."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    #: leftovers of a dead generation that still run a task are left to finish it (the
    #: scheduler's executor workers: the API server takes their result); the rest are killed
    keeps_busy_leftovers: bool = False
    #: judged by its heartbeat: a beat older than `hang_after_s` means it hangs
    has_heartbeat: bool = False
    #: a server the other components call (Airflow's api-server): stopped after them, so
    #: that their clean shutdown can still reach it (the triggerer otherwise waits for its
    #: triggers' clean-up until it is killed)
    stop_last: bool = False
    #: seconds its clean shutdown may take before its child processes are killed (None: no
    #: such limit). Airflow's triggerer waits up to 10 s, then 5 more, for its trigger
    #: runner subprocess to stop, and often needs all of them, on every stop
    stop_grace_s: float | None = None
    #: called with the new process's pid in a daemon thread after each start, restarts
    #: included (the api-server's warm-up: loopml/embedded.warm_execution_api); it must
    #: handle its own errors
    after_start: Callable[[int], None] | None = None
    process: subprocess.Popen | None = None
    generation: int = 0
    started_at: float = 0.0
    restarts: int = 0
    health: str = STARTING
    last_exit: str = ""
    last_heartbeat: float | None = None
    restart_at: float | None = None
    failures: deque = field(default_factory=deque)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "health": self.health,
            "last_exit": self.last_exit,
            "last_heartbeat": self.last_heartbeat,
            "log": str(self.log),
        }


class Supervisor:
    """Start, watch, restart and stop `components`; see the module docstring.

    `heartbeats()` returns, per component name, the time of its last sign of life (epoch
    seconds; 0 for "never") or None when unknown this time (e.g. the API that reports it does
    not answer); it is called every `interval_s`. A probe that raises counts as unknown.
    """

    def __init__(
        self,
        components: list[Component],
        *,
        state_file: Path,
        stack_log: Path,
        heartbeats: Callable[[], dict[str, float | None]] = dict,
        info: dict[str, Any] | None = None,
        say: Callable[[str], None] = print,
        max_failures: int = 5,
        failure_window_s: float = 600.0,
        hang_after_s: float = 120.0,
        backoff_max_s: float = 30.0,
        stop_timeout_s: float = 10.0,
        interval_s: float = 1.0,
    ) -> None:
        self.components = {c.name: c for c in components}
        self.state_file = state_file
        self.stack_log = stack_log
        self.heartbeats = heartbeats
        self.info = dict(info or {})
        self.say = say
        self.max_failures = max_failures
        self.failure_window_s = failure_window_s
        self.hang_after_s = hang_after_s
        self.backoff_max_s = backoff_max_s
        self.stop_timeout_s = stop_timeout_s
        self.interval_s = interval_s
        self.stack_id = uuid.uuid4().hex[:12]
        self.started_at = 0.0
        self.status = STARTING
        self.failure: str | None = None
        self.done = threading.Event()  # set when the stack stopped (asked to, or gave up)
        self._lock = threading.RLock()
        self._retired: list[str] = []  # markers of dead generations whose busy leftovers still run
        self.tracker = ProcessTracker()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start every component (without waiting for them to be ready)."""
        with self._lock:
            self.started_at = time.time()
            self.status = "running"
            for component in self.components.values():
                self._spawn(component)
            self._write_state()

    def run_in_thread(self) -> None:
        """Supervise from a daemon thread (for a command that does other work meanwhile)."""
        self._thread = threading.Thread(target=self.run_forever, name="loopml-supervisor", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        """Supervise until the stack is stopped or gives up."""
        while not self.done.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:  # a supervisor that dies silently is the bug we are fixing
                self._event(f"supervisor error (continuing): {type(exc).__name__}: {exc}")

    def stop(self, reason: str = "stopped") -> None:
        """Stop every process of the stack, including leftovers of dead components."""
        with self._lock:
            if self.status in (STOPPED, FAILED) and self.done.is_set():
                return
            self.done.set()
            for component in self.components.values():
                component.restart_at = None
            running = [c for c in self.components.values() if c.process and c.process.poll() is None]
            for last in (False, True):  # the components' own clean shutdown first, servers last
                self._stop_wave([c for c in running if c.stop_last is last])
            # what is left: leftovers of dead generations, children that ignore SIGTERM
            terminate(self.tracker.processes(), timeout_s=min(5.0, self.stop_timeout_s))
            for component in self.components.values():
                if component.process:
                    component.process.poll()
                    if component.health != FAILED:
                        component.health = STOPPED
            if self.status != FAILED:
                self.status = STOPPED
            self.info["stopped_reason"] = reason
            self._write_state()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _stop_wave(self, wave: list[Component]) -> None:
        """SIGTERM `wave` together, kill the children of those past their grace, wait for all."""
        for component in wave:
            _signal(component.pid, signal.SIGTERM)
        hurried = [c for c in wave if c.stop_grace_s is not None]
        if hurried:
            _wait_exit([c.pid for c in hurried], max(c.stop_grace_s or 0.0 for c in hurried))
            for component in hurried:
                if component.process and component.process.poll() is None:
                    _kill_children(component.pid)
        _wait_exit([c.pid for c in wave], self.stop_timeout_s)

    # --------------------------------------------------------------- supervision
    def tick(self, now: float | None = None) -> None:
        """One pass: notice exits and hangs, restart what is due, reap idle leftovers."""
        with self._lock:
            if self.done.is_set():
                return
            now = time.time() if now is None else now
            beats = self._heartbeats()
            self.tracker.scan()  # remember the components' descendants while their parents live
            for component in self.components.values():
                self._check(component, beats.get(component.name), now)
                if self.done.is_set():
                    return
            self._reap_retired()
            self._write_state()

    def _check(self, component: Component, beat: float | None, now: float) -> None:
        if component.restart_at is not None:
            if now >= component.restart_at:
                component.restart_at = None
                component.restarts += 1
                self._spawn(component)
                self._event(f"{component.name} restarted (restart {component.restarts}), pid {component.pid}")
            return
        code = component.process.poll() if component.process else None
        if code is not None:
            self._on_exit(component, _exit_text(code), now)
            return
        if beat is not None:
            component.last_heartbeat = beat or None
        # judged only when its heartbeat could be read this time: a scheduler must not be
        # taken for hung because the API that reports its heartbeat is itself restarting
        if component.has_heartbeat and beat is not None:
            since = max(component.last_heartbeat or 0.0, component.started_at)
            if now - since > self.hang_after_s:
                component.health = HUNG
                self._event(
                    f"{component.name} (pid {component.pid}) sent no heartbeat for {now - since:.0f}s: killing it"
                )
                self._kill_generation(component, keep_busy=component.keeps_busy_leftovers)
                self._on_exit(component, f"hung: no heartbeat for {now - since:.0f}s", now)
                return
            if component.last_heartbeat and component.last_heartbeat >= component.started_at:
                component.health = HEALTHY
        elif beat is not None:
            component.health = HEALTHY

    def _on_exit(self, component: Component, why: str, now: float) -> None:
        component.last_exit = why
        component.failures.append(now)
        while component.failures and now - component.failures[0] > self.failure_window_s:
            component.failures.popleft()
        failures = len(component.failures)
        if failures > self.max_failures:
            self.failure = (
                f"Airflow stack stopped: {component.name} failed {failures} times within "
                f"{self.failure_window_s / 60:.0f} min (last: {why}); see its log {component.log}"
            )
            component.health = FAILED
            self.status = FAILED
            self._event(self.failure)
            self.stop(reason=self.failure)
            return
        self._retire(component)
        delay = min(self.backoff_max_s, 2.0 ** (failures - 1))
        component.restart_at = now + delay
        component.health = RESTARTING
        self._event(f"{component.name} (pid {component.pid}) {why}; restarting in {delay:.0f}s (log: {component.log})")

    # ------------------------------------------------------------------ processes
    def _marker(self, component: Component) -> str:
        return f"{self.stack_id}/{component.name}/{component.generation}"

    def _spawn(self, component: Component) -> None:
        component.generation += 1
        env = dict(component.env or os.environ)
        env[MARKER] = self._marker(component)
        component.log.parent.mkdir(parents=True, exist_ok=True)
        with component.log.open("ab") as out:
            component.process = subprocess.Popen(
                component.argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.tracker.add_group(component.process.pid, self._marker(component))
        component.started_at = time.time()
        component.health = STARTING
        if component.after_start is not None:
            threading.Thread(
                target=component.after_start,
                args=(component.process.pid,),
                name=f"{component.name}-after-start",
                daemon=True,
            ).start()

    def _retire(self, component: Component) -> None:
        """The dead generation's leftovers: idle ones go now, busy ones when their task ends."""
        if component.keeps_busy_leftovers:
            self._retired.append(self._marker(component))
            self._reap_retired()
        else:
            self._kill_generation(component, keep_busy=False)

    def _kill_generation(self, component: Component, *, keep_busy: bool) -> None:
        if component.process and component.process.poll() is None:
            _signal(component.pid, signal.SIGTERM)
            _wait_exit([component.pid], self.stop_timeout_s)
            _signal(component.pid, signal.SIGKILL)
            component.process.wait(timeout=5)
        if not keep_busy:
            terminate(self.tracker.processes(self._marker(component)), timeout_s=self.stop_timeout_s)

    def _reap_retired(self) -> None:
        """Kill the retired generations' processes that no longer run a task."""
        if not self._retired:
            return
        members, children = self.tracker.scan(read_env=True)
        for marker in list(self._retired):
            pids = [pid for pid, owner in members.items() if owner == marker]
            if not pids:
                self._retired.remove(marker)
                continue
            kill(_live(_idle(pids, children)))  # nothing runs there to lose: no grace period

    def _heartbeats(self) -> dict[str, float | None]:
        try:
            return self.heartbeats() or {}
        except Exception:  # a probe failure means "unknown", never a crashed supervisor
            return {}

    # ------------------------------------------------------------- reporting
    def _event(self, text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        self.say(f"[loopml stack] {text}")
        self.stack_log.parent.mkdir(parents=True, exist_ok=True)
        with self.stack_log.open("a") as log:
            log.write(line + "\n")

    def state(self) -> dict[str, Any]:
        return {
            **self.info,
            "stack_id": self.stack_id,
            "supervisor_pid": os.getpid(),
            "started_at": self.started_at,
            "status": self.status,
            "failure": self.failure,
            "stack_log": str(self.stack_log),
            "components": {name: c.to_dict() for name, c in self.components.items()},
            "tracking": {**self.tracker.to_dict(), "since": self.tracker.since},
        }

    def _write_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=1))
        tmp.replace(self.state_file)


# --------------------------------------------------------------------------- helpers
class ProcessTracker:
    """Which live processes belong to the stack, and to which component generation.

    Three ways to know, because each misses cases: the process group of each generation
    (Airflow's executor workers stay in it, but their environment as seen in /proc is
    clobbered by setproctitle), the environment marker (for descendants that start
    sessions of their own with an intact environment), and descent from a known member,
    remembered across scans (so a re-parented process stays known after its parent died).
    """

    def __init__(self, groups: dict[int, str] | None = None, known: dict[int, tuple[float, str]] | None = None):
        self.groups: dict[int, str] = dict(groups or {})  # pgid (a generation's root pid) -> marker
        self.known: dict[int, tuple[float, str]] = dict(known or {})  # pid -> (create time, marker)
        self.since = time.time() - 5

    def add_group(self, pgid: int, marker: str) -> None:
        self.groups[pgid] = marker

    def scan(self, *, read_env: bool = False) -> tuple[dict[int, str], dict[int, list[int]]]:
        """Live members as {pid: generation marker}, and the children map of all processes."""
        table: dict[int, tuple[int, float]] = {}
        for process in psutil.process_iter(["ppid", "create_time"]):
            info = process.info
            if info.get("ppid") is not None and info.get("create_time") is not None:
                table[process.pid] = (info["ppid"], info["create_time"])
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        me = os.getpid()
        members: dict[int, str] = {}
        for pid, (_, created) in table.items():
            if pid == me:
                continue
            remembered = self.known.get(pid)
            if remembered and abs(remembered[0] - created) < 1:
                members[pid] = remembered[1]
                continue
            try:
                group = os.getpgid(pid)
            except OSError:
                continue
            if group in self.groups and created >= self.since:
                members[pid] = self.groups[group]
            elif read_env:
                marker = _env_marker(pid)
                if marker and (marker == self.stack_prefix or marker.startswith(self.stack_prefix + "/")):
                    members[pid] = marker
        queue = list(members)
        while queue:  # descendants of members are members of the same generation
            pid = queue.pop()
            for child in children.get(pid, []):
                if child not in members and child != me:
                    members[child] = members[pid]
                    queue.append(child)
        self.known = {pid: (table[pid][1], marker) for pid, marker in members.items()}
        return members, children

    @property
    def stack_prefix(self) -> str:
        markers = list(self.groups.values())
        return markers[0].split("/")[0] if markers else "\0"

    def processes(self, prefix: str = "") -> list[psutil.Process]:
        """Live members of the generation `prefix` names (all members when empty)."""
        members, _ = self.scan(read_env=True)
        return _live([pid for pid, marker in members.items() if not prefix or marker == prefix])

    def to_dict(self) -> dict[str, Any]:
        return {"groups": self.groups, "known": self.known}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessTracker:
        tracker = cls(
            {int(k): v for k, v in data.get("groups", {}).items()},
            {int(k): (v[0], v[1]) for k, v in data.get("known", {}).items()},
        )
        tracker.since = float(data.get("since", 0))
        return tracker


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exited with code {code}"


def _env_marker(pid: int) -> str:
    try:
        return psutil.Process(pid).environ().get(MARKER, "")
    except (psutil.Error, OSError):
        return ""


def _live(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def stop_leftovers(tracking: dict[str, Any], timeout_s: float = 10.0) -> int:
    """End what a stack whose supervisor died left running (`tracking`: its state's "tracking")."""
    processes = ProcessTracker.from_dict(tracking).processes()
    terminate(processes, timeout_s)
    return len(processes)


def _idle(members: list[int], children: dict[int, list[int]]) -> list[int]:
    """Members with no running work below them and no busy ancestor among `members`.

    A LocalExecutor worker that runs a task has the task's process as a child: it and its
    whole subtree are busy. A worker with no child, or `airflow serve-logs`, is idle.
    """
    busy: set[int] = set()
    for pid in members:
        below = children.get(pid, [])
        if below:
            busy.add(pid)
            queue = list(below)
            while queue:
                child = queue.pop()
                busy.add(child)
                queue.extend(children.get(child, []))
    return [pid for pid in members if pid not in busy]


def _signal(pid: int | None, signum: int) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _kill_children(pid: int | None) -> None:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for child in children:
        _signal(child.pid, signal.SIGKILL)


def _wait_exit(pids: list[int], timeout_s: float) -> None:
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=timeout_s)
