"""Config validation: the schema catches bad configs before any job runs."""
import subprocess

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import REPO
from kdsd.corpus.noise import family_names
from kdsd.distill import method_names

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _schema():
    return yaml.safe_load(SCHEMA.read_text())


def _config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_schema_names_match_the_registries():
    schema = _schema()
    # Method names are not enumerated (a method file must not need a schema edit), but every
    # packaged method has its options documented under `kd`.
    assert sorted(schema["properties"]["kd"]["properties"]) == method_names()
    assert sorted(schema["$defs"]["noise_family"]["enum"]) == sorted(family_names())


def _every_property_is_documented(node, path="config"):
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and "$ref" not in sub:
                assert "description" in sub, f"{path}.{key} has no description"
                assert "default" in sub, f"{path}.{key} has no default"
            _every_property_is_documented(sub, f"{path}.{key}")
        for key, sub in node.items():
            if key != "properties" and isinstance(sub, dict):
                _every_property_is_documented(sub, path)


def test_every_key_is_described_and_defaulted():
    _every_property_is_documented(_schema())


def test_default_config_and_presets_validate():
    for preset in sorted(p.name for p in (REPO / "workflow" / "presets").glob("*.yaml")) + [None]:
        config = _config()
        if preset:
            overrides = yaml.safe_load((REPO / "workflow" / "presets" / preset).read_text())
            for key, value in overrides.items():
                config[key] = {**config.get(key, {}), **value}
        validate(config, str(SCHEMA))


def test_empty_config_is_filled_with_defaults():
    config = {}
    validate(config, str(SCHEMA), set_default=True)
    assert config["students"]["methods"] == ["none", "sp2step", "cosine"]
    assert config["teacher"]["train"]["epochs"] == 12


@pytest.mark.parametrize("section,key,value,message", [
    ("students", "methods", ["none", "Cosine"], "'Cosine' does not match"),
    ("kd", "cosine_x", {"method": 3}, "3 is not of type"),
    ("teacher", "model", {"width": 0}, "0 is less than the minimum of 1"),
    ("corpus", "train_noises", ["thunder"], "'thunder' is not one of"),
])
def test_bad_values_are_refused(section, key, value, message):
    config = _config()
    config[section][key] = value
    with pytest.raises(WorkflowError, match=message):
        validate(config, str(SCHEMA))


def test_unknown_kd_method_stops_snakemake_before_any_job(tmp_path, env_with_venv):
    bad = tmp_path / "bad.yaml"
    bad.write_text("students:\n  methods: [none, cosin]\n")
    result = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
         "--configfile", str(bad)], capture_output=True, text=True, env=env_with_venv, timeout=120)
    assert result.returncode != 0
    assert ("students.methods: unknown KD method or variant 'cosin' (did you mean 'cosine'?); "
            "valid: cosine, hint, none, output, sp2step" in result.stderr)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("config_text,message", [
    ("evaluation:\n  test_sets: [test_matched, test_vocal]\n",
     "test_vocal not provided by corpus source 'synthetic'; it provides: test_matched, test_noise, "
     "test_snr, test_reverb, test_speaker"),
    ("corpus:\n  source: voicebank\n  voicebank: {root: /nonexistent/vctk}\n", "/nonexistent/vctk"),
    ("corpus:\n  source: folders\n", "folders"),
    ("corpus:\n  test_snr_db: [0.0, 5.0]\n", "must lie below the training range"),
    # KD methods and variants: checked against the registry and built once at parse time
    ("kd:\n  cosine_x: {method: cosine, granularity: sentence}\nstudents:\n  methods: [cosine_x]\n",
     "kd.cosine_x (scenario width_1_2): KD method 'cosine': granularity='sentence'; valid: frame, utterance"),
    ("kd:\n  cosine_x: {method: cosine, projector: none}\nstudents:\n  methods: [cosine_x]\n",
     "projector 'none' needs equal channels (student 32, teacher 64)"),
    ("kd:\n  cosine_x: {method: cosin}\nstudents:\n  methods: [cosine_x]\n",
     "kd.cosine_x.method: 'cosin' is not a registered KD method"),
    ("students:\n  method_files: [nowhere/mine.py]\n", "students.method_files: nowhere/mine.py: no such Python file"),
])
def test_config_problems_stop_snakemake_before_any_job(tmp_path, env_with_venv, config_text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(config_text)
    result = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
         "--configfile", str(REPO / "config.yaml"), str(bad)],
        capture_output=True, text=True, env=env_with_venv, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "results").exists()
