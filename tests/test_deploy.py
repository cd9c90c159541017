"""Deployable students: causal UNets, ONNX export with onnxruntime parity, hop-by-hop streaming
equal to offline causal processing, `kdsd enhance --stream`, latency and ONNX speed in the cost
record. Audio: real utterances of a tiny synthetic corpus (TTS speech + procedural noise)."""
import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from kdsd.corpus.manifest import read_manifest
from kdsd.corpus.synthetic import build_split
from kdsd.distill import get_method
from kdsd.enhance import (onnx_frame_mask, stream_wave, time_radius_frames,
                          torch_frame_mask)
from kdsd.errors import KdsdError
from kdsd.losses import SupervisedLoss
from kdsd.metrics.cost import write_model_cost, write_reference_cost
from kdsd.models.export import (NCHWC_MIN_WIDTH, OPSET, OnnxDenoiser, deploy_form,
                                disabled_optimizers, export_all, export_onnx, streaming_path)
from kdsd.models.io import load_model, save_model
from kdsd.models.numpy_signal import istft, stft
from kdsd.models.streaming import StreamingMask
from kdsd.models.unet import UNetDAE
from test_enhance import trained_shape_model

SR = 16_000
# (block, causal) of the exported models checked for parity
VARIANTS = [("plain", False), ("plain", True), ("inverted_residual", True)]


@pytest.fixture(scope="module")
def utterances(tmp_path_factory, tiny_corpus):
    """Noisy waveforms of two test_matched utterances of the tiny synthetic corpus."""
    manifest = build_split(tiny_corpus(), "test_matched", tmp_path_factory.mktemp("corpus"))
    table = read_manifest(manifest)
    return [sf.read(manifest.parent / path, dtype="float32")[0] for path in table["noisy_path"]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{(block, causal): (model, model.onnx path)} of trained-shape models."""
    out = {}
    for block, causal in VARIANTS:
        model = trained_shape_model(block=block, width=4, depth=2, causal=causal)
        folder = tmp_path_factory.mktemp(f"{block}_{causal}")
        export_all(model, folder / "model.onnx")
        out[block, causal] = model, folder / "model.onnx"
    return out


@torch.no_grad()
def offline(model, wave):
    return model(torch.from_numpy(wave)[None])[0].numpy()


# --- causal model ----------------------------------------------------------------------------

@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
def test_causal_output_never_depends_on_input_more_than_one_window_ahead(block):
    model = trained_shape_model(block=block, width=4, depth=3, causal=True)
    wave = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    changed = wave.copy()
    changed[8000:] += 0.3
    diff = np.abs(offline(model, changed) - offline(model, wave))
    assert diff[:8000 - model.n_fft + 1].max() == 0.0  # sample s reads input up to s + n_fft - 1
    assert diff[8000 - model.n_fft + 1:8000].max() > 1e-4
    noncausal = trained_shape_model(block=block, width=4, depth=3)
    diff = np.abs(offline(noncausal, changed) - offline(noncausal, wave))
    assert diff[:8000 - model.n_fft].max() > 0.0  # the non-causal twin looks further ahead


def test_latency_window_for_causal_and_look_ahead_for_non_causal():
    assert UNetDAE(width=2, depth=2, causal=True).algorithmic_latency_ms() == 32.0
    teacher = UNetDAE(width=16, depth=4)  # the figure for the default teacher: 104 ms
    assert time_radius_frames(teacher) == 9
    assert teacher.algorithmic_latency_ms() == 104.0


def test_causal_student_keeps_the_taps_and_frames_of_its_non_causal_twin():
    wave = torch.randn(2, 3000)
    _, causal_taps = UNetDAE(width=2, depth=2, causal=True)(wave, return_features=True)
    _, taps = UNetDAE(width=2, depth=2)(wave, return_features=True)
    assert {k: v.shape for k, v in causal_taps.items()} == {k: v.shape for k, v in taps.items()}
    assert set(UNetDAE(width=2, depth=2, causal=True).state_dict()) == set(
        UNetDAE(width=2, depth=2).state_dict())


@pytest.mark.parametrize("name", ["output", "hint", "sp2step", "cosine"])
def test_every_kd_method_distills_a_causal_student_from_the_non_causal_teacher(name):
    teacher, student = UNetDAE(width=4, depth=2), UNetDAE(width=2, depth=2, causal=True)
    method = get_method(name)(student, teacher, SupervisedLoss())
    _, losses = method(torch.randn(2, 3000), torch.randn(2, 3000))
    assert losses["kd"].item() > 0 and torch.isfinite(losses["sup"])
    losses["kd"].backward()
    assert student.encoders[0][0].weight.grad.abs().sum() > 0


def test_causal_flag_survives_save_and_load(tmp_path):
    model = trained_shape_model(width=2, depth=2, causal=True)
    save_model(tmp_path / "model.pt", model, config={}, seed=0, history=[])
    loaded, payload = load_model(tmp_path / "model.pt")
    assert payload["args"]["causal"] is True and loaded.causal
    assert "causal" not in UNetDAE(width=2, depth=2).args  # non-causal files stay as they were


# --- ONNX export -----------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_numpy_stft_matches_the_model_stft(utterances, causal):
    model = UNetDAE(width=2, depth=2, causal=causal)
    wave = utterances[0]
    spec = stft(wave, model.n_fft, model.hop, causal)
    expected = model.stft(torch.from_numpy(wave)[None])[0].numpy()
    assert spec.shape == expected.shape
    assert np.abs(spec - expected).max() < 1e-4
    assert np.abs(istft(spec, model.n_fft, model.hop, causal, len(wave)) - wave).max() < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnxruntime_matches_pytorch_on_corpus_utterances(exported, utterances, variant):
    model, path = exported[variant]
    denoiser = OnnxDenoiser(path)
    for wave in utterances:
        expected = offline(model, wave)
        estimate = denoiser(wave)
        assert estimate.shape == expected.shape
        assert np.abs(estimate - expected).max() <= 1e-4
        assert np.abs(expected - wave).max() > 1e-2  # the mask does something


def test_export_is_pinned_and_carries_the_framing(exported):
    import onnx

    _, path = exported["plain", True]
    graph = onnx.load(str(path))
    props = {p.key: p.value for p in graph.metadata_props}
    assert graph.opset_import[0].version == OPSET
    assert props["exporter"] == "torchscript" and props["causal"] == "true"
    assert (props["n_fft"], props["hop"], props["algorithmic_latency_ms"]) == ("512", "128", "32")
    assert streaming_path(path).is_file()
    assert not streaming_path(exported["plain", False][1]).exists()  # non-causal: no stream graph


def test_offline_export_writes_the_network_with_onnxruntimes_fast_operators(tmp_path, utterances):
    """PReLU as Max(x, a·x), compression as Exp(c·Log x), the last upsampler and the mask head as
    one transposed convolution; a PReLU slope above 1 (where max would be wrong) stays a PRelu.
    The mask is PyTorch's either way."""
    import onnx

    model = trained_shape_model(width=4, depth=2)
    with torch.no_grad():
        model.decoders[0][2].weight[0] = 1.5
    export_onnx(model, tmp_path / "model.onnx")
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    weights = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    assert "Pow" not in ops and ops.count("Log") == ops.count("Exp") == 1
    assert ops.count("PRelu") == 1 and ops.count("Max") == len(model.encoders) + 1 + len(model.decoders) - 1
    assert ops.count("ConvTranspose") == model.depth
    assert min(weights[node.input[1]][0] for node in graph.node if node.op_type == "Conv") == model.channels[0]
    assert np.abs(OnnxDenoiser(tmp_path / "model.onnx")(utterances[0]) - offline(model, utterances[0])).max() <= 1e-4
    assert isinstance(deploy_form(model).decoders[0][2], torch.nn.PReLU)  # the slope of 1.5
    assert isinstance(model.decoders[1][2], torch.nn.PReLU) and isinstance(model.mask_head, torch.nn.Conv2d)  # a copy


def test_narrow_offline_graphs_run_without_the_nchwc_layout(tmp_path):
    """onnxruntime's NCHWc layout pads convolution channels to the SIMD block: left out for
    offline graphs of students narrower than NCHWC_MIN_WIDTH, kept for wider ones, for
    streaming graphs and for graphs that are not kdsd exports."""
    narrow, wide = UNetDAE(width=NCHWC_MIN_WIDTH // 2, depth=2, causal=True), UNetDAE(width=NCHWC_MIN_WIDTH, depth=2)
    export_all(narrow, tmp_path / "narrow.onnx")
    export_onnx(wide, tmp_path / "wide.onnx")
    assert disabled_optimizers(tmp_path / "narrow.onnx") == ["NchwcTransformer"]
    assert disabled_optimizers(streaming_path(tmp_path / "narrow.onnx")) == []
    assert disabled_optimizers(tmp_path / "wide.onnx") == []
    (tmp_path / "noise.onnx").write_bytes(b"not a graph")
    assert disabled_optimizers(tmp_path / "noise.onnx") == []
    assert OnnxDenoiser(tmp_path / "narrow.onnx")(np.zeros(SR // 10, dtype=np.float32)).shape == (SR // 10,)


def test_bad_onnx_files_are_named(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(KdsdError, match="model.onnx: not a loadable ONNX model"):
        OnnxDenoiser(bad)
    with pytest.raises(KdsdError, match="missing.onnx: no such ONNX file"):
        OnnxDenoiser(tmp_path / "missing.onnx")


# --- streaming -------------------------------------------------------------------------------

@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
def test_streaming_hop_by_hop_equals_offline_causal_processing(exported, utterances, block):
    model, path = exported[block, True]
    onnx_mask, signal = onnx_frame_mask(streaming_path(path))
    assert (signal["n_fft"], signal["hop"]) == (model.n_fft, model.hop)
    for wave in [utterances[0], utterances[1][:12345]]:  # one length off the hop grid
        expected = offline(model, wave)
        for frame_mask in (torch_frame_mask(model), onnx_mask):
            result = stream_wave(frame_mask, wave, model.n_fft, model.hop)
            assert result.estimate.shape == expected.shape
            assert np.abs(result.estimate - expected).max() <= 1e-5
            assert len(result.hop_seconds) == 1 + len(wave) // model.hop
        onnx_mask, _ = onnx_frame_mask(streaming_path(path))  # fresh state for the next file


def test_streaming_state_tensors_have_the_documented_shapes():
    model = UNetDAE(width=2, depth=2, causal=True)
    stream = StreamingMask(model)
    mask, *history = stream(torch.rand(1, 257, 1), *stream.initial_history())
    assert mask.shape == (1, 257, 1)
    assert [tuple(h.shape[1:]) for h in history] == stream.history_shapes
    assert all(shape[-1] == 2 for shape in stream.history_shapes)  # two past frames per 3-wide conv


def test_only_causal_models_stream_and_only_stream_graphs_are_accepted(exported):
    with pytest.raises(KdsdError, match="only a causal model"):
        StreamingMask(UNetDAE(width=2, depth=2))
    with pytest.raises(KdsdError, match="model.onnx: not a kdsd streaming ONNX graph"):
        onnx_frame_mask(exported["plain", True][1])


def test_cli_stream_with_pytorch_and_onnx_writes_the_offline_estimate(tmp_path, exported,
                                                                     utterances, env_with_venv):
    model, path = exported["plain", True]
    save_model(tmp_path / "model.pt", model, config={}, seed=0, history=[])
    sf.write(tmp_path / "noisy.wav", utterances[0], SR, subtype="FLOAT")
    expected = offline(model, utterances[0])
    for backend in (["--model", str(tmp_path / "model.pt")], ["--onnx", str(streaming_path(path))]):
        run = subprocess.run(["kdsd", "enhance", "--stream", *backend, str(tmp_path / "noisy.wav"),
                              str(tmp_path / "out.wav")], capture_output=True, text=True,
                             env=env_with_venv)
        assert run.returncode == 0, run.stderr
        assert "per-hop compute: median" in run.stderr and "(CPU: median" in run.stderr
        assert "for a 8 ms hop" in run.stderr
        assert np.abs(sf.read(tmp_path / "out.wav", dtype="float32")[0] - expected).max() <= 1e-5
    noncausal = tmp_path / "noncausal.pt"
    save_model(noncausal, UNetDAE(width=2, depth=2), config={}, seed=0, history=[])
    run = subprocess.run(["kdsd", "enhance", "--stream", "--model", str(noncausal),
                          str(tmp_path / "noisy.wav"), str(tmp_path / "x.wav")],
                         capture_output=True, text=True, env=env_with_venv)
    assert run.returncode == 2 and "only a causal model" in run.stderr


# --- cost record -----------------------------------------------------------------------------

def test_cost_job_exports_and_reports_latency_and_onnx_rtf(tmp_path):
    model = trained_shape_model(width=2, depth=2, causal=True)
    save_model(tmp_path / "model.pt", model, config={}, seed=1, history=[],
               extra={"role": "student", "method": "cosine", "scenario": "causal"})
    write_model_cost(tmp_path / "model.pt", "students/causal/cosine/seed1", tmp_path / "cost.json",
                     onnx_out=tmp_path / "model.onnx")
    record = json.loads((tmp_path / "cost.json").read_text())
    assert record["latency_ms"] == 32.0 and record["causal"] is True
    assert 0 < record["rtf_onnx_1thread"] < 1 and 0 < record["rtf_1thread"] < 1
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.stream.onnx").is_file()


def test_deployment_benchmark_prints_each_students_speed_against_the_targets(tmp_path, capsys):
    """`kdsd bench-deploy` on a causal and a non-causal student folder: one row each, streaming
    figures only for the causal one, and the three target lines with their figures."""
    from kdsd.metrics.deploy_bench import ONNX_RTF_TARGET, bench_deployment, print_deployment

    folders = []
    for causal in (True, False):
        folder = tmp_path / f"causal_{causal}"
        model = trained_shape_model(width=2, depth=2, causal=causal)
        save_model(folder / "model.pt", model, config={}, seed=1, history=[], extra={"role": "student"})
        export_all(model, folder / "model.onnx")
        folders.append(folder)
    rows = bench_deployment(folders, seconds=1.0, repeats=2)
    causal, offline = rows
    assert (causal["latency_ms"], offline["latency_ms"]) == (32.0, 32.0 + 5 * 8.0)  # window + (2·depth + 1) hops
    assert causal["hop_ms"] == 8.0 and 0 < causal["hop_onnx_median_ms"] <= causal["hop_onnx_p99_ms"]
    assert 0 < causal["hop_torch_median_cpu_ms"] <= causal["hop_torch_p99_cpu_ms"]
    assert "hop_onnx_p99_ms" not in offline
    assert all(0 < r[k] < 1 for r in rows for k in ("rtf_torch_wall", "rtf_onnx_wall", "rtf_onnx_cpu"))
    assert all(0 < r[f"rtf_onnx_{stage}_cpu"] < 1 for r in rows for stage in ("stft", "network", "istft"))
    shares = offline["onnx_operator_share"]
    assert abs(sum(shares.values()) - 1) < 1e-9 and "Conv" in shares and "PRelu" not in shares
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
    print_deployment(rows)
    out = capsys.readouterr().out
    assert out.count("| STFT | network | mask + iSTFT | network by operator |") == 1
    assert f"{offline['rtf_onnx_network_wall']:.5f} / {offline['rtf_onnx_network_cpu']:.5f}" in out
    assert out.count(f"| {tmp_path}/causal_") == 2 * 2 and out.count("– (not causal)") == 2  # both tables
    assert "latency 32 ms (target ≤ 40): met" in out
    assert f"p99 per-hop compute under onnxruntime {causal['hop_onnx_p99_ms']:.3f} ms" in out
    assert f"onnxruntime RTF {offline['rtf_onnx_wall']:.4f} wall" in out
    for clock in ("wall", "cpu"):
        verdict = "met" if offline[f"rtf_onnx_{clock}"] <= ONNX_RTF_TARGET else "missed"
        assert f"{verdict} on {clock.replace('cpu', 'CPU')} time" in out
    with pytest.raises(KdsdError, match="no model.pt or model.onnx"):
        bench_deployment([tmp_path / "causal_True" / "model.pt", tmp_path], seconds=0.5, repeats=1)


def test_reference_latencies_are_documented(tmp_path):
    write_reference_cost("spectral_gating", tmp_path / "sg.json")
    record = json.loads((tmp_path / "sg.json").read_text())
    assert np.isnan(record["latency_ms"]) and "offline" in record["latency_source"]
    from kdsd.metrics.cost import REFERENCE_LATENCY
    assert REFERENCE_LATENCY["rnnoise"][0] == 30.0 and REFERENCE_LATENCY["deepfilternet3"][0] == 40.0


# --- the deployment snippet of docs/deployment.md ----------------------------------------------

def readme_snippet() -> str:
    from conftest import REPO

    text = (REPO / "docs" / "deployment.md").read_text()
    block = text.split("<!-- deploy-snippet -->\n```python\n", 1)[1]
    return block.split("```", 1)[0]


@pytest.mark.parametrize("variant", [("plain", False), ("plain", True)])
def test_readme_snippet_runs_without_torch_or_kdsd(tmp_path, exported, utterances, variant,
                                                   env_with_venv):
    model, path = exported[variant]
    (tmp_path / "model.onnx").write_bytes(path.read_bytes())
    sf.write(tmp_path / "noisy.wav", utterances[0], SR, subtype="FLOAT")
    blocker = "import sys; sys.modules['torch'] = None; sys.modules['kdsd'] = None\n"
    run = subprocess.run(["python", "-c", blocker + readme_snippet()], cwd=tmp_path,
                         capture_output=True, text=True, env=env_with_venv)
    assert run.returncode == 0, run.stderr
    assert len(readme_snippet().strip().splitlines()) <= 11
    estimate = sf.read(tmp_path / "enhanced.wav", dtype="float32")[0]
    assert np.abs(estimate - offline(model, utterances[0])).max() <= 1e-4


def test_chunked_offline_enhancement_of_a_causal_model_equals_the_whole_file(utterances):
    from kdsd.enhance import enhance_wave

    model = trained_shape_model(width=4, depth=2, causal=True)
    wave = utterances[0]
    assert np.abs(enhance_wave(model, wave, chunk_s=0.3) - offline(model, wave)).max() <= 1e-5
