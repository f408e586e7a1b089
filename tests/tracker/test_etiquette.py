"""Hub etiquette against a real rate-limiting HTTP proxy in front of olah."""

from types import SimpleNamespace

import pandas as pd
import pytest

from massdyn.testing.throttle import ThrottlingProxy
from massdyn.tracker.sources.etiquette import wait_for
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def env(url, cache):
    return {"HF_ENDPOINT": url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_XET": "1"}


def args(text_file, out):
    return ["--text", text_file, "--seqs", 2, "--seq-len", 16, "--bos", "--out", out]


@pytest.fixture
def proxy(hub, request):
    n, after = getattr(request, "param", (0, 1.0))
    p = ThrottlingProxy(hub.url, n_limited=n, retry_after=after).start()
    yield p
    p.stop()


@pytest.mark.parametrize("proxy", [(5, 0.5)], indirect=True)
def test_a_walk_waits_out_429s_as_the_server_asks(proxy, text_file, tmp_path):
    out = run_cli(
        "walk", "tiny/neox", *args(text_file, tmp_path / "o"), env=env(proxy.url, tmp_path)
    )
    assert out.returncode == 0, out.stderr
    assert proxy.limited == 5
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv")
    assert (ck["status"] == "ok").all() and len(ck) == 4


@pytest.mark.parametrize("proxy", [(10**6, 0.1)], indirect=True)
def test_a_limit_that_persists_is_one_clear_line(proxy, text_file, tmp_path):
    out = run_cli(
        "walk", "tiny/neox", *args(text_file, tmp_path / "o"), env=env(proxy.url, tmp_path)
    )
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "rate limited (429)" in err[0] and "HF_TOKEN" in err[0]


def test_the_audit_saves_the_duplicate_s_download(proxy, text_file, tmp_path):
    sent = {}
    for mode in ("skip", "measure"):
        before = proxy.body_bytes
        out = run_cli(
            "walk",
            "tiny/neox-lfs",
            *args(text_file, tmp_path / mode),
            "--duplicates",
            mode,
            # Without prefetch each revision leaves the cache before the next is fetched, so
            # step101's blobs cannot come from step100's (the Hub cache shares blobs).
            "--no-prefetch",
            env=env(proxy.url, tmp_path / f"c-{mode}"),
        )
        assert out.returncode == 0, out.stderr
        sent[mode] = proxy.body_bytes - before
    audit = run_cli(
        "audit", "tiny/neox-lfs", "--out", tmp_path / "a.csv", env=env(proxy.url, tmp_path)
    )
    step101 = pd.read_csv(tmp_path / "a.csv").set_index("step").loc[101, "bytes"]
    # Skipping step101 spares its weights; its config.json and the audit's own listing of
    # the revisions (a few hundred bytes each way) make the rest.
    assert abs(sent["measure"] - sent["skip"] - step101) < 2000 < step101
    assert audit.returncode == 0


def test_the_wait_follows_retry_after_then_ratelimit_then_doubles():
    def exc(headers):
        return SimpleNamespace(response=SimpleNamespace(headers=headers, status_code=429))

    assert wait_for(exc({"Retry-After": "7"}), 0, 60) == 7
    assert wait_for(exc({"Retry-After": "700"}), 0, 60) == 60
    limited = {
        "ratelimit": '"api";r=0;t=12',
        "ratelimit-policy": '"fixed window";"api";q=500;w=300',
    }
    assert wait_for(exc(limited), 0, 60) == 12
    assert [wait_for(exc({}), a, 60) for a in range(4)] == [1, 2, 4, 8]


WEIGHTS = r"/resolve/[^/]+/model\.safetensors"


def limited_weights(hub, n):
    return ThrottlingProxy(hub.url, n_limited=n, retry_after=0.2, only=WEIGHTS).start()


def test_downloads_wait_as_the_server_asks_not_as_huggingface_hub_does(hub, text_file, tmp_path):
    proxy = limited_weights(hub, 3)
    try:
        out = run_cli(
            "walk", "tiny/neox", *args(text_file, tmp_path / "o"), env=env(proxy.url, tmp_path)
        )
    finally:
        proxy.stop()
    assert out.returncode == 0, out.stderr
    assert proxy.limited == 3
    # huggingface_hub's own retry (1, 2, 4 s, whole-second Retry-After only) never ran.
    assert "Retrying in" not in out.stderr and "Rate limited. Waiting" not in out.stderr
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv")
    assert (ck["status"] == "ok").all() and len(ck) == 4


def test_a_lasting_429_on_weights_is_named_throttling(hub, text_file, tmp_path):
    proxy = limited_weights(hub, 10**6)
    try:
        out = run_cli(
            "walk", "tiny/neox", *args(text_file, tmp_path / "o"), env=env(proxy.url, tmp_path)
        )
    finally:
        proxy.stop()
    assert out.returncode == 1
    assert "stopped: 3 checkpoints in a row" in out.stdout and "1 not tried" in out.stdout
    ck = pd.read_csv(tmp_path / "o" / "checkpoints.csv")
    assert (ck["status"] == "failed").all() and len(ck) == 3
    assert ck["reason"].str.contains("rate limited (429)", regex=False).all(), ck["reason"].tolist()
    assert not ck["reason"].str.contains("connection").any()
