"""A real one-node Slurm cluster on this host, for tests (Debian's slurm-wlm and munge).

Needs root and the packages (``apt-get install slurm-wlm munge``); all state lives in a
temporary folder, and the daemons are stopped by their pids, never by name. Client commands
(``sbatch``, ``squeue``, ``scancel``, and submitit, which calls them) need ``SLURM_CONF``:
:meth:`LocalSlurm.env` gives it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from massdyn.testing.localhub import free_port

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch")


def missing() -> str | None:
    """Why a local cluster cannot start here (None when it can)."""
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root"
    absent = [d for d in DAEMONS if shutil.which(d) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install slurm-wlm munge)"
    return None


class LocalSlurm:
    """munged, slurmctld and slurmd on this host with a config in ``root``."""

    def __init__(self, root: Path, cpus: int | None = None):
        self.root = Path(root)
        self.host = socket.gethostname()
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = self.root / "slurm.conf"
        self.munge_pid: int | None = None

    def env(self) -> dict[str, str]:
        """The environment a client command needs."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 90) -> LocalSlurm:
        """Write the config, start the daemons and wait until the node is idle.

        Raises:
            RuntimeError: when the node does not come up within ``timeout`` seconds.
        """
        for d in ("state", "spool", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text(
            f"""ClusterName=local
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/ctld.log
SlurmdLogFile={r}/log/d.log
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName={self.host} CPUs={self.cpus} RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        )
        Path("/etc/munge").mkdir(parents=True, exist_ok=True)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)
        pidfile = self.root / "munged.pid"
        subprocess.run(
            ["munged", "--force", f"--pid-file={pidfile}"],
            check=True,
            capture_output=True,
        )
        self.munge_pid = int(pidfile.read_text().strip())
        env = self._env = self.env()
        subprocess.run(["slurmctld", "-i"], env=env, check=True, capture_output=True)
        subprocess.run(["slurmd"], env=env, check=True, capture_output=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True
            )
            if out.stdout.strip() in ("idle", "mix", "alloc"):
                return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the Slurm node did not come up: {self._log()}")

    def _log(self) -> str:
        logs = [self.root / "log" / "ctld.log", self.root / "log" / "d.log"]
        return " | ".join(p.read_text()[-600:] for p in logs if p.exists())

    def wait(self, job_id: str, timeout: float = 300) -> None:
        """Until no task of ``job_id`` is queued or running.

        Raises:
            TimeoutError: after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["squeue", "-h", "-j", str(job_id)], env=self._env, capture_output=True, text=True
            )
            if not out.stdout.strip():
                return
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still queued after {timeout} s")

    def stop(self) -> None:
        """SIGTERM to the daemons by their pids (SIGKILL after 10 s)."""
        pids = []
        for name in ("slurmd.pid", "slurmctld.pid"):
            pid = self.root / name
            if pid.exists():
                with contextlib.suppress(ValueError):
                    pids.append(int(pid.read_text().strip()))
        if self.munge_pid:
            pids.append(self.munge_pid)
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())
