"""experiments/robustness/corruption_target.py on hand-made robustness.json
files (two folds, and one "fold" given as workdirs)."""

import importlib.util
import json
import os

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "experiments" / "robustness" / "corruption_target.py"
INF = float("inf")


@pytest.fixture(scope="module")
def corruption_target():
  spec = importlib.util.spec_from_file_location("corruption_target", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _write(workdir, curves, subsets, folder="robustness"):
  (workdir / folder).mkdir(parents=True)
  (workdir / folder / "robustness.json").write_text(json.dumps(
      {"test_split": "test", "corruptions": curves,
       "modality_subsets_accuracy": {"test": subsets}}))


def _fused(occlusion, noise, missing_image, missing_audio, split="train"):
  return {
      "image_occlusion": {"levels": [0.0, 0.4, 0.8], "unit": "fraction",
                          "modality": "image", "accuracy": occlusion,
                          "missing_accuracy": missing_image,
                          "family_split": split},
      "audio_white_noise": {"levels": [INF, 10.0, -5.0], "unit": "SNR dB",
                            "modality": "audio", "accuracy": noise,
                            "missing_accuracy": missing_audio,
                            "family_split": "heldout"}}


@pytest.fixture()
def runs(tmp_path):
  root = tmp_path / "runs" / "loso"
  # george: every cell met. theo: occlusion 0.8 two points below marked
  # missing (0.90 against 0.92), the worst cell; noise -5 dB exactly one
  # point below (met).
  _write(root / "george" / "fused", _fused([1.0, 0.95, 0.93], [1.0, 0.99, 0.97],
                                           0.92, 0.96), {"image+audio": 1.0})
  # theo's analysis recorded before "missing_accuracy" and "modality":
  # read from its modality subsets.
  theo = _fused([0.98, 0.94, 0.90], [0.98, 0.97, 0.95], None, None)
  for curve in theo.values():
    del curve["missing_accuracy"], curve["modality"]
  _write(root / "theo" / "fused", theo,
         {"image+audio": 0.98, "image": 0.96, "audio": 0.92})
  for fold, image, audio in (("george", 0.96, 0.92), ("theo", 0.94, 0.90)):
    _write(root / fold / "image_only", {"image_occlusion": {
        "levels": [0.0, 0.4, 0.8], "unit": "fraction", "modality": "image",
        "accuracy": [image, 0.5, 0.2]}}, {"image": image})
    _write(root / fold / "audio_only", {"audio_white_noise": {
        "levels": [INF, 10.0, -5.0], "unit": "SNR dB", "modality": "audio",
        "accuracy": [audio, 0.6, 0.3]}}, {"audio": audio})
  # An older analysis of george's fused run, not the latest: ignored.
  _write(root / "george" / "fused", _fused([0.0] * 3, [0.0] * 3, 0.9, 0.9),
         {"image+audio": 0.0}, folder="robustness-1")
  os.utime(root / "george" / "fused" / "robustness-1" / "robustness.json",
           (1, 1))
  return tmp_path


def _args(tmp_path, *extra):
  return ["--runs", str(tmp_path / "runs"), "--folds", "george,theo",
          "--fused", "fused", "--image_only", "image_only", "--audio_only",
          "audio_only", "--results", str(tmp_path / "RESULTS.md"),
          "--figure", str(tmp_path / "corruption_target.png"), *extra]


def test_target_tables_and_figure_over_folds(corruption_target, runs):
  (runs / "RESULTS.md").write_text(
      "# Results\n\nbefore\n\n<!-- corruption_target -->\nstale table\n"
      "<!-- /corruption_target -->\n\nafter\n")
  summary = corruption_target.main(_args(runs))
  target = summary["target"]["fused"]
  assert target["folds"] == ["george", "theo"]
  # 2 levels x 2 folds per family; occlusion (train) misses theo's 0.8.
  assert (target["train"]["met"], target["train"]["cells"]) == (3, 4)
  assert (target["heldout"]["met"], target["heldout"]["cells"]) == (4, 4)
  assert target["all"]["fraction"] == 7 / 8
  worst = target["all"]["worst"]
  assert (worst["family"], worst["level"], worst["fold"]) == (
      "image_occlusion", 0.8, "theo")
  assert worst["margin"] == pytest.approx(-0.02)
  # Fold means: fused, marked missing, each single-modality model.
  assert summary["curves"]["fused"]["image_occlusion"] == pytest.approx(
      [0.99, 0.945, 0.915])
  assert summary["missing"]["fused"]["audio_white_noise"] == pytest.approx(0.96)
  image = summary["unimodal"]["image"]["curves"]
  assert image["image_occlusion"] == pytest.approx([0.95, 0.5, 0.2])
  assert image["audio_white_noise"] == pytest.approx([0.95] * 3)  # untouched
  text = (runs / "RESULTS.md").read_text()
  assert text.startswith("# Results\n\nbefore\n\n<!-- corruption_target -->")
  assert "stale table" not in text and text.endswith("<!-- /corruption_target -->\n\nafter\n")
  assert ("| fused | 2 | 3 of 4 (75.0%) | 4 of 4 (100.0%) | 7 of 8 (87.5%) "
          "| image_occlusion, 0.8, theo: 0.9000, 0.9200 |") in text
  assert ("| image_occlusion | train | clean | 0.9900 | 0.9200 | 0.9500 "
          "| 0.9100 |") in text
  assert "|  |  | 0.8 | 0.9150 | 0.9200 | 0.2000 | 0.9100 |" in text
  assert (runs / "corruption_target.png").is_file()
  assert corruption_target.figure(summary, runs / "again.png") == {
      "image_occlusion": ["fused", "image only (image_only)",
                          "fused, marked missing", "audio only (audio_only)"],
      "audio_white_noise": ["fused", "audio only (audio_only)",
                            "fused, marked missing", "image only (image_only)"]}


def test_split_from_another_variant_and_a_single_fold(corruption_target, runs):
  root = runs / "runs" / "loso"
  # theo's fused run as the official split's run, scored with george's run
  # as the source of the family split: its occlusion counts as held out.
  _write(runs / "other", _fused([0.98, 0.94, 0.90], [0.98, 0.97, 0.95],
                                0.92, 0.96, split="heldout"),
         {"image+audio": 0.98})
  argv = ["--workdir", f"fused={root / 'theo' / 'fused'}",
          "--workdir", f"other={runs / 'other'}",
          "--workdir", f"image_only={root / 'theo' / 'image_only'}",
          "--fused", "fused", "--fused", "other", "--image_only", "image_only",
          "--audio_only", "", "--results", str(runs / "RESULTS.md"),
          "--marker", "corruption_target_official",
          "--figure", str(runs / "official.png")]
  summary = corruption_target.main(argv)
  assert summary["target"]["fused"]["folds"] == ["official"]
  assert summary["target"]["fused"]["train"]["cells"] == 2
  assert summary["target"]["other"]["train"]["cells"] == 0
  assert list(summary["unimodal"]) == ["image"]
  summary = corruption_target.main(argv + ["--split_from", "other"])
  assert summary["target"]["fused"]["train"]["cells"] == 0
  assert summary["target"]["fused"]["heldout"]["met"] == 3
  text = (runs / "RESULTS.md").read_text()
  assert text.count("<!-- corruption_target_official -->") == 1
  assert "| fused | 1 | no cells | 3 of 4 (75.0%) |" in text
  with pytest.raises(SystemExit, match="missing for \\['audio_only'\\]"):
    corruption_target.main(argv + ["--audio_only", "audio_only"])
