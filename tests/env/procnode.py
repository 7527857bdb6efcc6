"""A node agent for the test cluster that runs each pod's containers as local processes.

KWOK's node only pretends to run pods. This agent registers a Node (`proc-node-0` by default)
and runs every container of the pods bound to it as a process on this machine. The image is
ignored. The container's `command` and `args` run with its `env`, `envFrom` and `workingDir`.
Pod status follows the kubelet's: Pending, Running, then Succeeded or Failed with
each process's exit code, container restarts under `restartPolicy`, `activeDeadlineSeconds`,
and graceful deletion. The kubelet's `/containerLogs` endpoint serves what the processes
printed, so `kubectl logs` works (current and `--previous`, `-c`, `--tail`, `--since`,
`--timestamps`, `--limit-bytes` and `-f`).

The node is tainted `jobrunner.dev/process-node=true:NoSchedule`, so only pods that tolerate
the taint land here. `tests/env/envctl.py` starts this file with the project's virtualenv.

Not emulated: images, volumes and volume mounts, probes, lifecycle hooks, resource limits,
sidecar init containers, exec, attach and port-forward. Processes share the host's network,
filesystem and user, and the log endpoint serves any local client without authentication.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import logging
import os
import platform
import queue
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

try:
    import urllib3
    from kubernetes import client, config, watch
    from kubernetes.client.exceptions import ApiException
except ImportError as missing:
    sys.exit(f"procnode: {missing}; run scripts/bootstrap to create the project's .venv")

TAINT = {"key": "jobrunner.dev/process-node", "value": "true", "effect": "NoSchedule"}
NODE_IP = "127.0.0.1"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
REQUEST_TIMEOUT = (5, 30)  # connect and read timeouts, in seconds, of every API call
CONFIG_RETRY_SECONDS = 2.0  # wait before retrying a container whose Secret or key is missing
SHUTDOWN_GRACE_SECONDS = 5.0  # the agent's own stop must fit into envctl's 20 s
KILL_WAIT_SECONDS = 10.0  # how long a SIGKILLed process may take before it is reported lost
MAX_LOG_RECORD = 16 * 1024  # longer lines are split into partial records, as containerd does
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
TERMINAL_PHASES = ("Succeeded", "Failed")

# Why a pod worker stops running containers.
FINISHED = "finished"
DELETED = "deleted"  # the pod has a deletionTimestamp
REMOVED = "removed"  # the pod object no longer exists, so no status can be posted
DEADLINE = "deadline"
SHUTDOWN = "shutdown"

log = logging.getLogger("procnode")


# --- time formats ---------------------------------------------------------------------------


def rfc3339(moment: float | None = None) -> str:
    """Format a Unix time, by default now, with the seconds precision of object timestamps."""
    when = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def nano_time(nanoseconds: int) -> str:
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


TIME_PATTERN = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_time_ns(text: str) -> int:
    """Parse an RFC 3339 time with up to nanosecond precision into Unix nanoseconds."""
    match = TIME_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid RFC 3339 time {text!r}")
    whole = datetime.strptime(match[1] + match[3], "%Y-%m-%dT%H:%M:%S%z")
    return int(whole.timestamp()) * 1_000_000_000 + int((match[2] or "0").ljust(9, "0"))


# --- container environment ------------------------------------------------------------------

REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Expand `$(NAME)` references as the kubelet does: `$$` is a literal `$`, and a reference
    to an undefined variable stays as written."""
    return REFERENCE.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


class ContainerConfigError(Exception):
    """A container's environment names a Secret, ConfigMap, key or field that is unavailable."""


class EnvResolver:
    """Resolve a pod's container environments, reading each Secret and ConfigMap once."""

    def __init__(self, core: client.CoreV1Api, pod: dict[str, Any]) -> None:
        self.core = core
        self.pod = pod
        self.sources: dict[tuple[str, str], dict[str, str] | None] = {}

    def resolve(self, container: dict[str, Any]) -> dict[str, str]:
        """Return the variables of `envFrom`, then of `env`, which override them."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if field in source:
                    values = self.source(kind, source[field], key=None)
                    prefix = source.get("prefix", "")
                    env.update({prefix + key: value for key, value in (values or {}).items()})
        for variable in container.get("env") or []:
            if "valueFrom" not in variable:
                env[variable["name"]] = expand(variable.get("value", ""), env)
                continue
            value = self.value_from(variable["valueFrom"])
            if value is not None:
                env[variable["name"]] = value
        return env

    def value_from(self, source: dict[str, Any]) -> str | None:
        for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if field in source:
                values = self.source(kind, source[field], key=source[field]["key"])
                return None if values is None else values[source[field]["key"]]
        if "fieldRef" in source:
            return self.field(source["fieldRef"]["fieldPath"])
        raise ContainerConfigError("resourceFieldRef is not supported on the process node")

    def source(self, kind: str, ref: dict[str, Any], *, key: str | None) -> dict[str, str] | None:
        """Return the data of the Secret or ConfigMap that `ref` names.

        Returns None when the object, or `key` in it, is missing and `ref` is optional.
        """
        values = self.read(kind, ref["name"])
        namespace = self.pod["metadata"]["namespace"]
        if values is None or (key is not None and key not in values):
            if ref.get("optional", False):
                return None
            if values is None:
                raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            raise ContainerConfigError(
                f"couldn't find key {key} in {kind} {namespace}/{ref['name']}"
            )
        return values

    def read(self, kind: str, name: str) -> dict[str, str] | None:
        if (kind, name) in self.sources:
            return self.sources[kind, name]
        namespace = self.pod["metadata"]["namespace"]
        reader = (
            self.core.read_namespaced_secret
            if kind == "Secret"
            else self.core.read_namespaced_config_map
        )
        try:
            response = reader(
                name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status != 404:
                raise ContainerConfigError(
                    f"reading {kind} {name} failed: {error.reason}"
                ) from error
            values = None
        else:
            data = json.loads(response.data).get("data") or {}
            if kind == "Secret":
                # Secret data is bytes; surrogateescape carries any byte into the environment.
                data = {
                    key: base64.b64decode(value).decode("utf-8", "surrogateescape")
                    for key, value in data.items()
                }
            values = dict(data)
        self.sources[kind, name] = values
        return values

    def field(self, path: str) -> str:
        metadata, spec = self.pod["metadata"], self.pod["spec"]
        fields = {
            "metadata.name": metadata["name"],
            "metadata.namespace": metadata["namespace"],
            "metadata.uid": metadata["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.hostIP": NODE_IP,
            "status.hostIPs": NODE_IP,
            "status.podIP": NODE_IP,
            "status.podIPs": NODE_IP,
        }
        if path in fields:
            return str(fields[path])
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return str((metadata.get(match[1]) or {}).get(match[2], ""))
        raise ContainerConfigError(f"fieldPath {path} is not supported on the process node")


# --- processes and their logs ---------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this child when the thread that started it exits.

    Runs in the child between fork and exec. Pod workers start processes and outlive them, so
    the signal only fires when the agent itself dies without stopping its processes.
    """
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class LogWriter:
    """Copy a process's stdout and stderr into a file in the CRI log format the kubelet reads.

    Each record is `<RFC 3339 time> <stream> <F|P> <text>`. F ends a line, and P marks part of
    a line: a piece of one longer than MAX_LOG_RECORD bytes, or output that ended without a
    newline.
    """

    def __init__(self, path: Path) -> None:
        self.file = path.open("ab")
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def copy(self, pipe: IO[bytes], stream: bytes) -> None:
        thread = threading.Thread(target=self._copy, args=(pipe, stream), daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self, *, timeout: float) -> None:
        # A process that left the group and kept the pipe open would block the copy forever.
        for thread in self.threads:
            thread.join(timeout)
        with self.lock:
            self.file.close()

    def _copy(self, pipe: IO[bytes], stream: bytes) -> None:
        pending = b""
        with pipe:
            while chunk := os.read(pipe.fileno(), 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                records = [(b"F", line) for line in lines]
                while len(pending) >= MAX_LOG_RECORD:
                    records.append((b"P", pending[:MAX_LOG_RECORD]))
                    pending = pending[MAX_LOG_RECORD:]
                self._write(stream, records)
        self._write(stream, [(b"P", pending)] if pending else [])

    def _write(self, stream: bytes, records: list[tuple[bytes, bytes]]) -> None:
        if not records:
            return
        stamp = nano_time(time.time_ns()).encode()
        data = b"".join(b"%s %s %s %s\n" % (stamp, stream, tag, text) for tag, text in records)
        with self.lock:
            if not self.file.closed:
                self.file.write(data)
                self.file.flush()


class ContainerRun:
    """One run of a container: a process group, its log, and a thread that reports its end."""

    def __init__(
        self,
        *,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        log_path: Path,
        on_exit: Callable[[ContainerRun, int, str], None],
    ) -> None:
        self.log_path = log_path
        self.log = LogWriter(log_path)
        try:
            self.process = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        except BaseException:
            self.log.close(timeout=0)
            raise
        self.pid = self.process.pid
        self.lock = threading.Lock()
        self.reaped = False
        assert self.process.stdout is not None and self.process.stderr is not None
        self.log.copy(self.process.stdout, b"stdout")
        self.log.copy(self.process.stderr, b"stderr")
        threading.Thread(target=self._wait, args=(on_exit,), daemon=True).start()

    def signal(self, signum: int) -> None:
        """Send `signum` to the run's process group unless the run has ended."""
        with self.lock:
            if not self.reaped:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signum)

    def _wait(self, on_exit: Callable[[ContainerRun, int, str], None]) -> None:
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        finished_at = rfc3339()
        with self.lock:
            # The leader has exited but is not reaped, so its pid cannot name another group yet.
            # A container's processes all end with its main process: kill what it left behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            returncode = self.process.wait()
            self.reaped = True
        self.log.close(timeout=5)
        # A process killed by a signal reports 128 + the signal number, as container runtimes do.
        on_exit(self, returncode if returncode >= 0 else 128 - returncode, finished_at)


# --- pods -----------------------------------------------------------------------------------


@dataclass
class Termination:
    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    container_id: str = ""
    message: str = ""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Termination:
        return cls(
            exit_code=state.get("exitCode", 0),
            reason=state.get("reason", ""),
            started_at=state.get("startedAt", ""),
            finished_at=state.get("finishedAt", ""),
            container_id=state.get("containerID", ""),
            message=state.get("message", ""),
        )

    def state(self) -> dict[str, Any]:
        terminated = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at or None,
            "finishedAt": self.finished_at or None,
        }
        if self.container_id:
            terminated["containerID"] = self.container_id
        if self.message:
            terminated["message"] = self.message
        return {"terminated": terminated}


@dataclass
class Container:
    """One container of a pod across its runs, and how its restart policy treats an exit."""

    spec: dict[str, Any]
    init: bool
    restart_on_success: bool
    restart_on_failure: bool
    runs: int = 0  # runs started, counting those of an earlier agent
    run: ContainerRun | None = None
    run_started_at: str = ""
    terminated: Termination | None = None  # state.terminated: the last run, with no restart due
    last: Termination | None = None  # lastState.terminated
    waiting: tuple[str, str] = ("ContainerCreating", "")
    start_at: float | None = None  # monotonic time of the next start; None when none is due

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def restart_count(self) -> int:
        return max(self.runs - 1, 0)

    @property
    def succeeded(self) -> bool:
        return self.terminated is not None and self.terminated.exit_code == 0

    @property
    def done(self) -> bool:
        return self.run is None and self.start_at is None

    def status(self) -> dict[str, Any]:
        if self.run is not None:
            state: dict[str, Any] = {"running": {"startedAt": self.run_started_at}}
        elif self.terminated is not None:
            state = self.terminated.state()
        else:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        status = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.succeeded if self.init else self.run is not None,
            "started": self.run is not None,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last.state() if self.last else {},
        }
        if self.run is not None:
            status["containerID"] = f"procnode://{self.run.pid}"
        elif self.terminated is not None and self.terminated.container_id:
            status["containerID"] = self.terminated.container_id
        return status


class PodWorker(threading.Thread):
    """Run one pod's containers from first sight to a terminal phase, or until it is removed.

    Other threads only call `update`, `notify_removed` and `notify_shutdown`. Processes of this
    pod are started from this thread, which outlives them (see `die_with_parent`).
    """

    def __init__(self, agent: NodeAgent, pod: dict[str, Any]) -> None:
        metadata, spec = pod["metadata"], pod["spec"]
        self.key = f"{metadata['namespace']}/{metadata['name']}"
        super().__init__(name=f"pod {self.key}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.uid: str = metadata["uid"]
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.removed = False
        self.shutting_down = False
        self.killing = False

        restart = spec.get("restartPolicy", "Always")
        self.init_containers = [
            Container(c, init=True, restart_on_success=False, restart_on_failure=restart != "Never")
            for c in spec.get("initContainers") or []
        ]
        self.containers = [
            Container(
                c,
                init=False,
                restart_on_success=restart == "Always",
                restart_on_failure=restart != "Never",
            )
            for c in spec["containers"]
        ]

        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.start_time = (pod.get("status") or {}).get("startTime") or rfc3339()
        deadline = spec.get("activeDeadlineSeconds")
        self.deadline = (
            None if deadline is None else parse_time_ns(self.start_time) / 1e9 + deadline
        )
        self.transitions: dict[str, tuple[str, str]] = {}
        self.published: dict[str, Any] | None = None
        self.directory = agent.pod_directory(self.uid)

    # Called from other threads.

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self.events.put(("wake",))

    def notify_removed(self) -> None:
        self.removed = True
        self.events.put(("wake",))

    def notify_shutdown(self) -> None:
        self.shutting_down = True
        self.events.put(("wake",))

    # The worker's own thread.

    def run(self) -> None:
        try:
            self.recover()
            outcome = FINISHED
            for container in self.init_containers:
                if not container.succeeded:
                    outcome = self.run_group([container])
                if outcome != FINISHED or not container.succeeded:
                    break
            else:
                outcome = self.run_group(self.containers)
            self.finish(outcome)
        except Exception:
            log.exception("pod %s: the agent failed; stopping its processes", self.key)
        finally:
            self.terminate(grace=0)
            self.agent.worker_done(self)

    @property
    def all_containers(self) -> list[Container]:
        return self.init_containers + self.containers

    def recover(self) -> None:
        """Take over a pod that an earlier agent ran, whose processes died with that agent."""
        status = self.pod.get("status") or {}
        previous = {
            s["name"]: s
            for s in (status.get("initContainerStatuses") or [])
            + (status.get("containerStatuses") or [])
        }
        for container in self.all_containers:
            seen = previous.get(container.name)
            if seen is None:
                continue
            state, last = seen.get("state") or {}, (seen.get("lastState") or {}).get("terminated")
            if not (state.get("running") or state.get("terminated") or last):
                continue
            container.runs = seen.get("restartCount", 0) + 1
            container.last = None if last is None else Termination.from_state(last)
            if "terminated" in state:
                container.terminated = Termination.from_state(state["terminated"])
            elif "running" in state:
                lost = Termination(
                    exit_code=137,
                    reason="ContainerStatusUnknown",
                    started_at=state["running"].get("startedAt", ""),
                    finished_at=rfc3339(),
                    message="The process was lost when the node agent restarted",
                )
                self.on_exit(container, lost)
            else:
                container.start_at = time.monotonic()
        if previous:
            log.info("pod %s: taken over from an earlier agent", self.key)

    def run_group(self, group: list[Container]) -> str:
        """Run containers side by side under their restart policy until each is done, or the
        pod is deleted, removed or past its deadline. Return which of those happened."""
        for container in group:
            if container.runs == 0 and container.done:
                container.start_at = time.monotonic()
        while True:
            outcome = self.stop_reason()
            if outcome is not None:
                return outcome
            for container in group:
                due = container.start_at is not None and container.start_at <= time.monotonic()
                if container.run is None and due:
                    self.start_container(container)
            self.publish()
            if all(container.done for container in group):
                return FINISHED
            self.wait_event(timeout=self.next_wakeup(group))

    def stop_reason(self) -> str | None:
        if self.removed:
            return REMOVED
        if self.shutting_down:
            return SHUTDOWN
        if self.pod["metadata"].get("deletionTimestamp"):
            return DELETED
        if self.deadline is not None and time.time() >= self.deadline:
            return DEADLINE
        return None

    def next_wakeup(self, group: list[Container]) -> float:
        now = time.monotonic()
        times = [c.start_at - now for c in group if c.run is None and c.start_at is not None]
        if self.deadline is not None:
            times.append(self.deadline - time.time())
        return min([5.0, *times]) if times else 5.0

    def wait_event(self, *, timeout: float) -> None:
        try:
            event = self.events.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            return
        if event[0] == "exit":
            _, container, run, exit_code, finished_at = event
            self.on_exit(
                container,
                Termination(
                    exit_code=exit_code,
                    reason="Completed" if exit_code == 0 else "Error",
                    started_at=container.run_started_at,
                    finished_at=finished_at,
                    container_id=f"procnode://{run.pid}",
                ),
            )

    def start_container(self, container: Container) -> None:
        container.start_at = None
        try:
            env = EnvResolver(self.agent.core, self.pod).resolve(container.spec)
            argv = [
                expand(arg, env)
                for arg in (container.spec.get("command") or [])
                + (container.spec.get("args") or [])
            ]
            if not argv:
                raise ContainerConfigError(
                    "the container has no command; the process node runs commands, not images"
                )
        except ContainerConfigError as error:
            if container.waiting != ("CreateContainerConfigError", str(error)):
                log.warning(
                    "pod %s: container %s cannot start: %s", self.key, container.name, error
                )
            container.waiting = ("CreateContainerConfigError", str(error))
            container.start_at = time.monotonic() + CONFIG_RETRY_SECONDS
            return

        index = container.runs
        container.runs += 1
        if container.terminated is not None:
            container.last, container.terminated = container.terminated, None
        log_path = self.directory / "logs" / container.name / f"{index}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd = container.spec.get("workingDir") or str(self.new_work_directory(container, index))
        base = {
            "PATH": os.environ.get("PATH", DEFAULT_PATH),
            "HOSTNAME": self.pod["metadata"]["name"],
        }
        started_at = rfc3339()
        # Marked active before the process starts: a quick exit must find the mark to clear.
        self.agent.active_logs.add(log_path)
        try:
            run = ContainerRun(
                argv=argv,
                env={**base, "HOME": cwd, **env},
                cwd=cwd,
                log_path=log_path,
                on_exit=lambda run, code, at: self.run_ended(container, run, code, at),
            )
        except OSError as error:
            # Container runtimes report a command that cannot start as exit code 128.
            self.agent.active_logs.discard(log_path)
            log.warning("pod %s: container %s failed to start: %s", self.key, container.name, error)
            failure = Termination(128, "StartError", started_at, rfc3339(), message=str(error))
            self.on_exit(container, failure)
            return
        container.run, container.run_started_at = run, started_at
        log.info("pod %s: container %s started (pid %d)", self.key, container.name, run.pid)

    def new_work_directory(self, container: Container, index: int) -> Path:
        path = self.directory / "work" / f"{container.name}-{index}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_ended(self, container: Container, run: ContainerRun, exit_code: int, at: str) -> None:
        """Queue the end of a run for this worker. The thread that reaped the process calls it."""
        self.agent.active_logs.discard(run.log_path)
        self.events.put(("exit", container, run, exit_code, at))

    def on_exit(self, container: Container, termination: Termination) -> None:
        container.run = None
        failed = termination.exit_code != 0
        restart = container.restart_on_failure if failed else container.restart_on_success
        log.info(
            "pod %s: container %s exited with code %d (%s)",
            self.key,
            container.name,
            termination.exit_code,
            termination.reason,
        )
        if not restart or self.killing:
            container.terminated, container.start_at = termination, None
            return
        # The first restart is immediate. Later ones back off like the kubelet's, starting at
        # --restart-backoff and doubling up to --max-restart-backoff.
        count = container.restart_count
        delay = (
            0.0
            if count == 0
            else min(self.agent.backoff * 2 ** (count - 1), self.agent.max_backoff)
        )
        container.last, container.terminated = termination, None
        container.waiting = (
            "CrashLoopBackOff",
            f"back-off {delay:g}s restarting container={container.name} pod={self.key}",
        )
        container.start_at = time.monotonic() + delay

    def terminate(self, *, grace: float) -> None:
        """Stop every process: SIGTERM, then SIGKILL after `grace` seconds, or at once when the
        pod object is removed.

        A deletion with a shorter grace period, arriving meanwhile, shortens the wait.
        """
        self.killing = True
        for container in self.all_containers:
            container.start_at = None
        running = [c for c in self.all_containers if c.run is not None]
        if not running:
            return
        for container in running:
            assert container.run is not None
            container.run.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        kill_at = time.monotonic() + grace
        give_up_at: float | None = None
        while running := [c for c in running if c.run is not None]:
            now = time.monotonic()
            deletion_grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
            if deletion_grace is not None:
                kill_at = min(kill_at, now + deletion_grace)
            if self.removed:
                kill_at = now
            if give_up_at is None and now >= kill_at:
                for container in running:
                    assert container.run is not None
                    container.run.signal(signal.SIGKILL)
                give_up_at = now + KILL_WAIT_SECONDS
            if give_up_at is not None and now >= give_up_at:
                names = ", ".join(c.name for c in running)
                log.error("pod %s: containers %s did not exit after SIGKILL", self.key, names)
                return
            self.wait_event(timeout=(give_up_at or kill_at) - now)

    def finish(self, outcome: str) -> None:
        if outcome == REMOVED:
            return
        spec = self.pod["spec"]
        grace = {
            DELETED: self.pod["metadata"].get("deletionGracePeriodSeconds", 30),
            DEADLINE: spec.get("terminationGracePeriodSeconds", 30),
            SHUTDOWN: min(spec.get("terminationGracePeriodSeconds", 30), SHUTDOWN_GRACE_SECONDS),
        }.get(outcome, 0)
        self.terminate(grace=grace)
        if outcome == DEADLINE:
            self.phase, self.reason = "Failed", "DeadlineExceeded"
            self.message = "Pod was active on the node longer than the specified deadline"
        elif outcome == SHUTDOWN:
            self.phase, self.reason = "Failed", "Terminated"
            self.message = "Pod was terminated in response to imminent node shutdown."
        else:
            succeeded = all(c.succeeded for c in self.all_containers)
            self.phase = "Succeeded" if succeeded else "Failed"
        self.publish(attempts=1 if outcome == SHUTDOWN else 5)
        log.info("pod %s: %s%s", self.key, self.phase, f" ({self.reason})" if self.reason else "")

    # Status.

    def publish(self, *, attempts: int = 1) -> None:
        """Patch the pod's status if it changed. A failed patch is retried with the next one."""
        status = self.status()
        if status == self.published or self.removed:
            return
        metadata = self.pod["metadata"]
        for attempt in range(attempts):
            try:
                self.agent.core.patch_namespaced_pod_status(
                    metadata["name"],
                    metadata["namespace"],
                    {"status": status},
                    _request_timeout=REQUEST_TIMEOUT,
                )
            except ApiException as error:
                if error.status == 404:
                    self.removed = True
                    return
                problem = f"{error.status} {error.reason}"
            except urllib3.exceptions.HTTPError as error:
                problem = str(error)
            else:
                self.published = status
                return
            log.warning("pod %s: status update %d failed: %s", self.key, attempt + 1, problem)
            if attempt + 1 < attempts:
                time.sleep(1)

    def status(self) -> dict[str, Any]:
        if self.phase not in TERMINAL_PHASES:
            self.phase = "Running" if any(c.runs for c in self.containers) else "Pending"
        incomplete = [c.name for c in self.init_containers if not c.succeeded]
        unready = [c.name for c in self.containers if c.run is None]
        if self.phase == "Succeeded":
            not_ready = ("PodCompleted", "")
        elif self.phase == "Failed":
            not_ready = ("PodFailed", "")
        else:
            not_ready = (
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            )
        ready = not unready and self.phase == "Running"
        status: dict[str, Any] = {
            "phase": self.phase,
            "reason": self.reason or None,
            "message": self.message or None,
            "conditions": [
                self.condition("PodReadyToStartContainers", ok=True),
                self.condition(
                    "Initialized",
                    ok=not incomplete,
                    reason="ContainersNotInitialized",
                    message=f"containers with incomplete status: [{' '.join(incomplete)}]",
                ),
                self.condition(
                    "ContainersReady", ok=ready, reason=not_ready[0], message=not_ready[1]
                ),
                self.condition("Ready", ok=ready, reason=not_ready[0], message=not_ready[1]),
            ],
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": NODE_IP,
            "podIPs": [{"ip": NODE_IP}],
            "startTime": self.start_time,
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if "generation" in self.pod["metadata"]:
            status["observedGeneration"] = self.pod["metadata"]["generation"]
        return status

    def condition(
        self, kind: str, *, ok: bool, reason: str = "", message: str = ""
    ) -> dict[str, Any]:
        value = "True" if ok else "False"
        if self.transitions.get(kind, ("", ""))[0] != value:
            self.transitions[kind] = (value, rfc3339())
        # The status patch merges conditions by type, so null clears an earlier reason.
        return {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": self.transitions[kind][1],
            "reason": None if ok else (reason or None),
            "message": None if ok else (message or None),
        }


# --- the kubelet endpoint -------------------------------------------------------------------


class PodNotFoundError(LookupError):
    """The log request names a pod that is not bound to this node."""


@dataclass(frozen=True)
class LogOptions:
    """The query of a `/containerLogs` request, as the API server forwards `kubectl logs`."""

    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None
    timestamps: bool = False

    @classmethod
    def from_query(cls, query: str) -> LogOptions:
        """Parse the query string, raising ValueError that names the first invalid parameter."""
        values = {key: items[-1] for key, items in parse_qs(query).items()}

        def number(name: str) -> int | None:
            if name not in values:
                return None
            try:
                return int(values[name])
            except ValueError:
                raise ValueError(f"invalid {name} {values[name]!r}: expected an integer") from None

        since_seconds = number("sinceSeconds")
        since_ns = None if since_seconds is None else time.time_ns() - since_seconds * 10**9
        if "sinceTime" in values:
            since_ns = parse_time_ns(values["sinceTime"])
        return cls(
            follow=values.get("follow", "false").lower() in ("true", "1"),
            previous=values.get("previous", "false").lower() in ("true", "1"),
            tail_lines=number("tailLines"),
            limit_bytes=number("limitBytes"),
            since_ns=since_ns,
            timestamps=values.get("timestamps", "false").lower() in ("true", "1"),
        )


def format_record(record: bytes, options: LogOptions) -> bytes | None:
    """Turn one CRI log record into what `kubectl logs` prints, or None when filtered out."""
    stamp, _stream, tag, text = record.rstrip(b"\n").split(b" ", 3)
    if options.since_ns is not None and parse_time_ns(stamp.decode()) < options.since_ns:
        return None
    output = text + b"\n" if tag == b"F" else text
    return stamp + b" " + output if options.timestamps else output


def read_log(path: Path, options: LogOptions, active: Callable[[], bool]) -> Iterator[bytes]:
    """Yield a log's records as `kubectl logs` prints them. With `follow`, keep yielding new
    records until the run has ended and its last record was read."""
    with path.open("rb") as file:
        records = file.readlines()
        if records and not records[-1].endswith(b"\n"):
            file.seek(-len(records.pop()), os.SEEK_CUR)  # a record still being written
        if options.tail_lines is not None:
            records = records[-options.tail_lines :] if options.tail_lines > 0 else []
        for record in records:
            if (output := format_record(record, options)) is not None:
                yield output
        while options.follow:
            ended = not active()  # read after this check, so the last records are not missed
            record = file.readline()
            if record.endswith(b"\n"):
                if (output := format_record(record, options)) is not None:
                    yield output
                continue
            file.seek(-len(record), os.SEEK_CUR)
            if ended:
                return
            time.sleep(0.2)


class KubeletHandler(BaseHTTPRequestHandler):
    """Serve `/healthz` and the kubelet's `/containerLogs/{namespace}/{pod}/{container}`."""

    server: LogServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.split("/")
        if url.path == "/healthz":
            ready = self.server.agent.ready.is_set()
            self.reply(200 if ready else 503, "ok" if ready else "the node is not Ready yet")
        elif len(parts) == 5 and parts[1] == "containerLogs":
            self.send_logs(*parts[2:], query=url.query)
        else:
            self.reply(404, f"{url.path} is not served; the process node serves /containerLogs")

    def send_logs(self, namespace: str, pod: str, container: str, *, query: str) -> None:
        agent = self.server.agent
        try:
            options = LogOptions.from_query(query)
            path = agent.find_log(namespace, pod, container, previous=options.previous)
        except PodNotFoundError as error:
            self.reply(404, str(error))
            return
        except (LookupError, ValueError) as error:
            self.reply(400, str(error))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        sent = 0
        try:
            for record in read_log(path, options, lambda: path in agent.active_logs):
                output = record
                if options.limit_bytes is not None:
                    output = record[: options.limit_bytes - sent]
                self.wfile.write(output)
                sent += len(output)
                if options.limit_bytes is not None and sent >= options.limit_bytes:
                    return
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return  # the client went away, as `kubectl logs -f` does on Ctrl-C

    def reply(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: %s", self.address_string(), format % args)


class LogServer(ThreadingHTTPServer):
    """An HTTPS server that does each TLS handshake in the request's own thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], agent: NodeAgent, context: ssl.SSLContext):
        super().__init__(address, KubeletHandler)
        self.agent = agent
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log.debug("http %s: TLS handshake failed: %s", client_address, error)
            return
        with tls:
            super().finish_request(tls, client_address)


def serving_context(state_dir: Path, node_name: str) -> ssl.SSLContext:
    """Load the serving certificate, creating a self-signed one with openssl on first use."""
    cert, key = state_dir / "kubelet.crt", state_dir / "kubelet.key"
    if not (cert.exists() and key.exists()):
        names = f"subjectAltName=IP:{NODE_IP},DNS:{node_name},DNS:localhost"
        result = subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"),
                *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={node_name}"),
                *("-addext", names),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            sys.exit(f"procnode: openssl failed to create {cert}: {result.stderr.strip()}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


# --- the node -------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""

    os_release = dict(
        line.split("=", 1) for line in read("/etc/os-release").splitlines() if "=" in line
    )
    meminfo = dict(line.split(":", 1) for line in read("/proc/meminfo").splitlines() if ":" in line)
    machine = platform.machine()
    return {
        "memory": meminfo.get("MemTotal", "1048576 kB").split()[0] + "Ki",
        "os_image": os_release.get("PRETTY_NAME", "Linux").strip('"'),
        "machine_id": read("/etc/machine-id"),
        "boot_id": read("/proc/sys/kernel/random/boot_id"),
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine),
    }


class NodeAgent:
    """Register the node, keep it Ready, and run the pods that the scheduler binds to it."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        node_name: str,
        port: int,
        state_dir: Path,
        max_pods: int,
        backoff: float,
        max_backoff: float,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.leases = client.CoordinationV1Api(api)
        self.node_name = node_name
        self.port = port
        self.state_dir = state_dir
        self.max_pods = max_pods
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.started_at = rfc3339()
        self.kubelet_version = ""
        self.lock = threading.Lock()
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # uids whose worker is done, so no run starts again
        self.removing: set[str] = set()
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> pod
        self.active_logs: set[Path] = set()  # logs of running processes, for `logs -f`
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.removals = ThreadPoolExecutor(max_workers=4, thread_name_prefix="remove")

    def pod_directory(self, uid: str) -> Path:
        return self.state_dir / "pods" / uid

    def run(self) -> None:
        started = time.monotonic()
        context = serving_context(self.state_dir, self.node_name)
        try:
            server = LogServer((NODE_IP, self.port), self, context)
        except OSError as error:
            sys.exit(f"procnode: cannot listen on {NODE_IP}:{self.port}: {error.strerror}")
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        self.register()
        threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.watch_pods, name="watch", daemon=True).start()
        self.wait_schedulable()
        if self.ready.is_set():
            log.info("node %s: Ready in %.1fs", self.node_name, time.monotonic() - started)
        while not self.stopping.wait(1):
            pass
        self.shutdown()
        server.shutdown()

    # Registration and heartbeats.

    def register(self) -> None:
        """Create the Node, or take over an existing one, then post its status and Lease."""
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": machine_facts()["architecture"],
            "type": "process",
        }
        manifest = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": labels},
            "spec": {"taints": [TAINT]},
        }
        try:
            response = self.core.create_node(
                manifest, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
            log.info("node %s: registered", self.node_name)
        except ApiException as error:
            if error.status != 409:
                raise
            existing = json.loads(self.core.read_node(self.node_name, _preload_content=False).data)
            others = [t for t in existing["spec"].get("taints") or [] if t["key"] != TAINT["key"]]
            patch = {"metadata": {"labels": labels}, "spec": {"taints": [*others, TAINT]}}
            response = self.core.patch_node(
                self.node_name, patch, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
            log.info("node %s: taken over the existing Node", self.node_name)
        node_uid = json.loads(response.data)["metadata"]["uid"]
        # The node reports the API server's version, so version-skew checks see no skew.
        version = client.VersionApi(self.api).get_code(_request_timeout=REQUEST_TIMEOUT)
        self.kubelet_version = version.git_version
        self.post_status()
        self.renew_lease(owner_uid=node_uid)

    def post_status(self) -> None:
        facts = machine_facts()
        resources = {
            "cpu": str(os.cpu_count() or 1),
            "memory": facts["memory"],
            "ephemeral-storage": str(shutil.disk_usage(self.state_dir).total),
            "pods": str(self.max_pods),
        }
        now = rfc3339()
        conditions = [
            ("Ready", "True", "KubeletReady", "procnode is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "procnode does not check"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "procnode does not check"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "procnode does not check"),
        ]
        status = {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": kind,
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self.started_at,
                }
                for kind, value, reason, message in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": facts["machine_id"],
                "systemUUID": facts["machine_id"],
                "bootID": facts["boot_id"],
                "kernelVersion": platform.release(),
                "osImage": facts["os_image"],
                "containerRuntimeVersion": "procnode://1",
                "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": facts["architecture"],
            },
        }
        self.core.patch_node_status(
            self.node_name, {"status": status}, _request_timeout=REQUEST_TIMEOUT
        )

    def renew_lease(self, *, owner_uid: str | None = None) -> None:
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": micro_time(),
        }
        try:
            self.leases.patch_namespaced_lease(
                self.node_name, LEASE_NAMESPACE, {"spec": spec}, _request_timeout=REQUEST_TIMEOUT
            )
            return
        except ApiException as error:
            if error.status != 404 or owner_uid is None:
                raise
        owner = {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": owner_uid}
        lease = {"metadata": {"name": self.node_name, "ownerReferences": [owner]}, "spec": spec}
        self.leases.create_namespaced_lease(
            LEASE_NAMESPACE, lease, _request_timeout=REQUEST_TIMEOUT
        )

    def heartbeat(self) -> None:
        """Renew the Lease and the Ready condition, so the node-lifecycle controller keeps the
        node Ready. A Node or Lease deleted meanwhile is registered again."""
        failing = False
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                try:
                    self.renew_lease()
                    self.post_status()
                except ApiException as error:
                    if error.status != 404:
                        raise
                    self.register()
            except (ApiException, urllib3.exceptions.HTTPError) as error:
                if not failing:
                    log.warning(
                        "node %s: heartbeat failed, retrying every %gs: %s",
                        self.node_name,
                        HEARTBEAT_SECONDS,
                        error,
                    )
                failing = True
                continue
            if failing:
                log.info("node %s: heartbeat succeeded again", self.node_name)
            failing = False

    def wait_schedulable(self) -> None:
        """Wait until the node is Ready and the node-lifecycle controller removed the not-ready
        taint that admission puts on new nodes. From then on /healthz returns 200."""
        while not self.stopping.is_set():
            try:
                node = json.loads(self.core.read_node(self.node_name, _preload_content=False).data)
            except (ApiException, urllib3.exceptions.HTTPError) as error:
                log.warning("node %s: reading the Node failed: %s", self.node_name, error)
                time.sleep(1)
                continue
            conditions = {c["type"]: c["status"] for c in node["status"].get("conditions") or []}
            taints = {t["key"] for t in node["spec"].get("taints") or []}
            if conditions.get("Ready") == "True" and not taints.intersection(NOT_READY_TAINTS):
                self.ready.set()
                return
            time.sleep(0.5)

    # Pods.

    def watch_pods(self) -> None:
        """List, then watch, the pods bound to this node, listing again when the watch expires."""
        selector = f"spec.nodeName={self.node_name}"
        first = True
        while not self.stopping.is_set():
            try:
                response = self.core.list_pod_for_all_namespaces(
                    field_selector=selector,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
                listing = json.loads(response.data)
                self.sync(listing["items"], remove_stale_directories=first)
                first = False
                pods = watch.Watch()
                version = listing["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    for event in pods.stream(
                        self.core.list_pod_for_all_namespaces,
                        field_selector=selector,
                        resource_version=version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=60,
                        _request_timeout=(5, 90),
                    ):
                        version = event["raw_object"]["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self.on_event(event["type"], event["raw_object"])
            except ApiException as error:
                if error.status != 410:  # 410: the watch expired, so list again
                    log.warning("pods: list or watch failed (%s); retrying", error.reason)
                    time.sleep(1)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                log.warning("pods: list or watch failed (%s); retrying", error)
                time.sleep(1)

    def sync(self, pods: list[dict[str, Any]], *, remove_stale_directories: bool) -> None:
        listed = {pod["metadata"]["uid"] for pod in pods}
        with self.lock:
            known = [pod for pod in self.pods.values() if pod["metadata"]["uid"] not in listed]
        for pod in known:
            self.on_event("DELETED", pod)
        for pod in pods:
            self.on_event("MODIFIED", pod)
        if remove_stale_directories and (self.state_dir / "pods").is_dir():
            for directory in (self.state_dir / "pods").iterdir():
                if directory.name not in listed:
                    shutil.rmtree(directory, ignore_errors=True)

    def on_event(self, kind: str, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        uid, key = metadata["uid"], (metadata["namespace"], metadata["name"])
        with self.lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if self.pods.get(key, {}).get("metadata", {}).get("uid") == uid:
                    del self.pods[key]
                self.finished.discard(uid)
                self.removing.discard(uid)
                if worker is not None:
                    worker.notify_removed()
                else:
                    shutil.rmtree(self.pod_directory(uid), ignore_errors=True)
                return
            self.pods[key] = pod
            if worker is not None:
                worker.update(pod)
                return
            phase = (pod.get("status") or {}).get("phase")
            if uid not in self.finished and phase not in TERMINAL_PHASES:
                if not self.stopping.is_set():
                    worker = PodWorker(self, pod)
                    self.workers[uid] = worker
                    worker.start()
                return
        if metadata.get("deletionTimestamp"):
            self.request_removal(pod)

    def worker_done(self, worker: PodWorker) -> None:
        with self.lock:
            self.workers.pop(worker.uid, None)
            if worker.removed:
                shutil.rmtree(self.pod_directory(worker.uid), ignore_errors=True)
                return
            self.finished.add(worker.uid)
        if worker.pod["metadata"].get("deletionTimestamp") and not worker.shutting_down:
            self.request_removal(worker.pod)

    def request_removal(self, pod: dict[str, Any]) -> None:
        """Delete a terminated pod's object for good, as the kubelet does once its processes
        are gone: with grace period 0 and the uid as a precondition."""
        with self.lock:
            if pod["metadata"]["uid"] in self.removing or self.stopping.is_set():
                return
            self.removing.add(pod["metadata"]["uid"])
        self.removals.submit(self.remove, pod)

    def remove(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": metadata["uid"]}}
        for attempt in range(5):
            try:
                self.core.delete_namespaced_pod(
                    metadata["name"],
                    metadata["namespace"],
                    body=body,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            except ApiException as error:
                if error.status in (404, 409):  # already gone, or a new pod of the same name
                    return
                problem = f"{error.status} {error.reason}"
            except urllib3.exceptions.HTTPError as error:
                problem = str(error)
            else:
                log.info("pod %s/%s: removed", metadata["namespace"], metadata["name"])
                return
            log.warning(
                "pod %s/%s: removal %d failed: %s",
                metadata["namespace"],
                metadata["name"],
                attempt + 1,
                problem,
            )
            time.sleep(1)

    def find_log(self, namespace: str, pod_name: str, container: str, *, previous: bool) -> Path:
        """Find the log file of a container's current or previous run from the pod's status,
        choosing the run as the kubelet does."""
        with self.lock:
            pod = self.pods.get((namespace, pod_name))
        if pod is None:
            raise PodNotFoundError(
                f'pod "{pod_name}" in namespace "{namespace}" is not on node {self.node_name}'
            )

        status = pod.get("status") or {}
        statuses = (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []
        )
        seen = next((s for s in statuses if s["name"] == container), None)
        if seen is None:
            raise LookupError(f'container "{container}" in pod "{pod_name}" is waiting to start')
        state = seen.get("state") or {}
        last = (seen.get("lastState") or {}).get("terminated")
        restarts = seen.get("restartCount", 0)

        if previous:
            if last is None:
                raise LookupError(
                    f'previous terminated container "{container}" in pod "{pod_name}" not found'
                )
            run = restarts if "waiting" in state else restarts - 1
        elif "running" in state or "terminated" in state or last is not None:
            run = restarts
        else:
            reason = (state.get("waiting") or {}).get("reason", "")
            raise LookupError(
                f'container "{container}" in pod "{pod_name}" is waiting to start: {reason}'
            )
        path = self.pod_directory(pod["metadata"]["uid"]) / "logs" / container / f"{run}.log"
        if not path.exists():
            raise LookupError(f'no log of run {run} of container "{container}" in pod "{pod_name}"')
        return path

    def shutdown(self) -> None:
        """Stop every pod's processes and mark those pods Failed, as graceful node shutdown does."""
        with self.lock:
            workers = list(self.workers.values())
        log.info("node %s: stopping the processes of %d pods", self.node_name, len(workers))
        for worker in workers:
            worker.notify_shutdown()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS + KILL_WAIT_SECONDS
        for worker in workers:
            worker.join(timeout=max(deadline - time.monotonic(), 0))
        self.removals.shutdown(wait=False, cancel_futures=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the API server")
    parser.add_argument("--node-name", default="proc-node-0", help="name of the Node to register")
    parser.add_argument(
        "--port", type=int, default=10250, help="port on 127.0.0.1 of the HTTPS log endpoint"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        required=True,
        help="directory for the serving certificate, the logs and the working directories",
    )
    parser.add_argument("--max-pods", type=int, default=110, help="pods the node accepts")
    parser.add_argument(
        "--restart-backoff",
        type=float,
        default=10.0,
        help="seconds before a container's second restart, doubled for each later one",
    )
    parser.add_argument(
        "--max-restart-backoff", type=float, default=300.0, help="upper bound of the back-off"
    )
    parser.add_argument("--debug", action="store_true", help="log every request and event")
    args = parser.parse_args()

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    args.state_dir.mkdir(parents=True, exist_ok=True)

    configuration = client.Configuration()
    config.load_kube_config(config_file=args.kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = 32  # one pool, shared by every pod worker
    agent = NodeAgent(
        api=client.ApiClient(configuration),
        node_name=args.node_name,
        port=args.port,
        state_dir=args.state_dir,
        max_pods=args.max_pods,
        backoff=args.restart_backoff,
        max_backoff=args.max_restart_backoff,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stopping.set())
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
