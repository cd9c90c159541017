"""The model-loading metrics (WER, speaker similarity, DNSMOS P.835 + P.808) run with the
network cut off: every model and data file comes from an installed package."""
import json
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, socket, numpy as np
try:  # the child must really be offline, or this test proves nothing
    socket.create_connection(("1.1.1.1", 80), timeout=2).close(); online = True
except OSError:
    online = False
from kdsd.corpus.tts import Voice, synthesize
from kdsd.metrics.asr import word_error_rate
from kdsd.metrics.composite import composite
from kdsd.metrics.dnsmos import dnsmos
from kdsd.metrics.speaker import speaker_similarity
text = "Every plumber in Shanghai sneezed awkwardly."
clean = synthesize(Voice("piper", "en_US-joe-medium"), text)
print(json.dumps({"online": online, "wer": word_error_rate(text, clean),
                  "spk_sim": speaker_similarity(clean, clean),
                  **dnsmos(clean, p808=True), **composite(clean, clean)}))
"""


def _offline_prefix() -> list[str]:
    """An empty network namespace where we may make one; otherwise proxies at a closed port."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def test_metrics_load_nothing_from_the_network(tmp_path):
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"),
               HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed, https_proxy=closed,
               NO_PROXY="", no_proxy="")
    prefix = _offline_prefix()
    done = subprocess.run([*prefix, sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    if prefix:
        assert scores["online"] is False
    assert scores["wer"] == 0.0 and scores["spk_sim"] == pytest.approx(1.0, abs=1e-5)
    assert 1.0 <= scores["dnsmos_p808"] <= 5.0 and scores["csig"] == 5.0
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] if (tmp_path / "cache").exists() else []
    assert not [p for p in cached if p.suffix in (".pt", ".onnx", ".bin", ".dict")], cached
