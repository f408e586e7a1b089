"""A Hub-compatible server (olah) on a free loopback port, serving local git repos.

Offline, this is how the Hub code path of the walker runs for real: each checkpoint
folder becomes a branch of a git repo (weights optionally as Git LFS objects, written
without the git-lfs tool), and olah answers the Hub API for them. Needs ``olah``
(``pip install olah``, part of the ``dev`` extra) and ``git``.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from massdyn.tracker.sources.base import step_of

LFS_SUFFIXES = (".safetensors", ".bin")


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


class LocalHub:
    """olah serving plain git repos as Hub repos, each branch a revision."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL to use as HF_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    def add_model_repo(
        self, repo_id: str, branches: dict[str, Path], lfs: bool = False, corrupt=()
    ):
        """One branch per ``name -> folder``; with ``lfs``, weights become LFS pointers.

        Branches in ``corrupt`` get an LFS object whose bytes differ from its sha256.
        """
        repo = self.mirrors / "models" / repo_id
        repo.mkdir(parents=True)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "commit", "-q", "--allow-empty", "-m", "root")
        for name, folder in branches.items():
            _git(repo, "checkout", "-q", "-B", name, "main")
            for p in repo.iterdir():
                if p.name != ".git":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            for f in Path(folder).iterdir():
                data = f.read_bytes()
                if lfs and f.suffix in LFS_SUFFIXES:
                    oid = hashlib.sha256(data).hexdigest()
                    obj = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
                    obj.parent.mkdir(parents=True, exist_ok=True)
                    stored = bytes([data[0] ^ 0xFF]) + data[1:] if name in corrupt else data
                    obj.write_bytes(stored)
                    pointer = "version https://git-lfs.github.com/spec/v1\n"
                    pointer += f"oid sha256:{oid}\nsize {len(data)}\n"
                    (repo / f.name).write_text(pointer)
                else:
                    shutil.copy(f, repo / f.name)
            if lfs:
                (repo / ".gitattributes").write_text(
                    "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES)
                )
            _git(repo, "add", "-A")
            _git(repo, "commit", "-q", "-m", name)
        _git(repo, "checkout", "-q", "main")
        # As on the Hub, main is the final model: the highest step (else the last branch).
        steps = {n: s for n in branches if (s := step_of(n)) is not None}
        last = max(steps, key=steps.get) if steps else list(branches)[-1]
        _git(repo, "reset", "-q", "--hard", last)
        return repo

    def alias(self, repo_id: str, branch: str, existing: str) -> None:
        """Add ``branch`` pointing at the same commit as ``existing``."""
        _git(self.mirrors / "models" / repo_id, "branch", branch, existing)

    def commit_to(self, repo_id: str, branch: str, files: dict[str, str]) -> str:
        """A new commit on ``branch`` adding text files (``path -> content``): a moved branch.

        Returns:
            The new commit id.
        """
        repo = self.mirrors / "models" / repo_id
        _git(repo, "checkout", "-q", branch)
        for name, text in files.items():
            (repo / name).write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"update {branch}")
        commit = _git(repo, "rev-parse", "HEAD").strip()
        _git(repo, "checkout", "-q", "main")
        return commit

    def add_dataset_repo(self, repo_id: str, files: dict[str, str]):
        """A dataset repo with one commit of text files (``path -> content``)."""
        repo = self.mirrors / "datasets" / repo_id
        repo.mkdir(parents=True)
        _git(repo, "init", "-q", "-b", "main")
        for name, text in files.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "data")
        return repo

    def start(self, probe_repo: str) -> LocalHub:
        """Start olah and wait until it answers for ``probe_repo``.

        Raises:
            RuntimeError: when olah exits or does not answer within 60 s.
        """
        exe = shutil.which("olah-cli") or str(Path(sys.executable).with_name("olah-cli"))
        cfg = self.root / "olah.toml"
        cfg.write_text(
            f"""[basic]
host = "127.0.0.1"
port = {self.port}
repos-path = "{self.root / "repos"}"
mirrors-path = ["{self.mirrors}"]
hf-scheme = "http"
hf-netloc = "127.0.0.1:9"
hf-lfs-netloc = "127.0.0.1:9"
mirror-scheme = "http"
mirror-netloc = "127.0.0.1:{self.port}"
mirror-lfs-netloc = "127.0.0.1:{self.port}"
[accessibility]
offline = true
"""
        )
        log = (self.root / "olah.out").open("w")
        self.proc = subprocess.Popen(
            [exe, "-c", str(cfg), "--log-path", str(self.root / "logs")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.out').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/models/{probe_repo}/refs", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("olah did not become ready within 60 s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
