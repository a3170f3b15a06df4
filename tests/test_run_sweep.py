"""The sweep runner's plan, skip-if-done logic and RESULTS.md table."""

import json
import pathlib
import sys
import types

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "experiments"))
import run_sweep  # noqa: E402  pylint: disable=wrong-import-position

SWEEP = types.SimpleNamespace(
    CONFIG="configs/av_digits.py",
    COMMON={"num_train_steps": 7},
    VARIANTS={"image_only": ("", {"modalities": ("image",)}),
              "gated": ("fusion=gated", {})},
    UNIMODAL=("image_only",),
    PROTOCOLS={"loso": {"a": {"data.test_speakers": ("a",)},
                        "b": {"data.test_speakers": ("b",)}},
               "official": {"seed0": {}}})


def record(accuracy, f1=None):
  return {"results": {"test": {"accuracy": accuracy,
                               "macro_f1": accuracy if f1 is None else f1}},
          "run_info": {"num_params": 1234, "train_examples_per_second": 100.0},
          "wall_seconds": 60.0, "command": "python launch.py ..."}


def test_plan_crosses_protocols_folds_and_variants():
  runs = run_sweep.plan(SWEEP)
  assert list(runs) == ["loso/a/image_only", "loso/a/gated", "loso/b/image_only",
                        "loso/b/gated", "official/seed0/image_only",
                        "official/seed0/gated"]
  config, overrides = runs["loso/b/gated"]
  assert config == "configs/av_digits.py:fusion=gated"
  assert overrides == {"num_train_steps": 7, "data.test_speakers": ("b",)}
  assert runs["official/seed0/image_only"][0] == "configs/av_digits.py"


def test_plan_substitutes_the_fold_and_the_runs_root():
  sweep = types.SimpleNamespace(**{**vars(SWEEP), "VARIANTS": {
      "transfer": ("", {"model.encoders.audio.init_from":
                        "{runs}/loso/{fold}/audio_only", "num_train_steps": 3})}})
  runs = run_sweep.plan(sweep, "/tmp/r")
  assert runs["loso/b/transfer"][1]["model.encoders.audio.init_from"] == (
      "/tmp/r/loso/b/audio_only")
  assert runs["official/seed0/transfer"][1]["num_train_steps"] == 3


def test_summary_means_stds_worst_fold_and_verdict():
  records = {"loso/a/image_only": record(0.90), "loso/b/image_only": record(0.96),
             "loso/a/gated": record(0.97), "loso/b/gated": record(0.95),
             "official/seed0/gated": record(0.99)}
  stats = run_sweep.summarize(SWEEP, records)
  gated = stats["loso"]["gated"]
  assert gated["accuracy"] == pytest.approx(0.96)
  assert gated["accuracy_std"] == pytest.approx(0.0141421, rel=1e-4)  # sample std
  assert gated["accuracy_worst"] == 0.95 and gated["folds"] == 2
  assert "image_only" not in stats["official"]
  text = run_sweep.verdict(stats["loso"], SWEEP.UNIMODAL)
  assert "`image_only` 0.9300" in text and "`gated` 0.9600 (+3.00 points)" in text
  assert "1 of 1 fused models beat" in text
  assert "Not enough finished runs" in run_sweep.verdict(
      stats["official"], SWEEP.UNIMODAL)


def test_write_results_keeps_hand_written_text(tmp_path):
  (tmp_path / "RESULTS.md").write_text(
      "# Mine\n\nbefore\n\n<!-- table -->\nold\n<!-- /table -->\n\nafter\n")
  records = {"loso/a/gated": record(0.97), "loso/a/image_only": record(0.9)}
  run_sweep.write_results(tmp_path, SWEEP, records)
  text = (tmp_path / "RESULTS.md").read_text()
  assert text.startswith("# Mine\n\nbefore\n\n<!-- table -->\n### loso")
  assert text.endswith("<!-- /table -->\n\nafter\n") and "\nold\n" not in text
  assert "| gated | 0.9700 ± 0.0000 | 0.9700 |" in text
  assert "| 1,234 | 100 | 60 | 1/2 |" in text
  assert json.loads((tmp_path / "results.json").read_text()) == records
  assert (tmp_path / "accuracy.png").stat().st_size > 0


def test_plot_rows_only_where_a_table_has_the_variant():
  # Sections with variants of their own get no empty slots; a variant in
  # two tables gets two adjacent rows.
  stats = {"loso": {"a": {}, "b": {}}, "official": {"b": {}}, "empty": {},
           "emoji": {"c": {}}}
  assert run_sweep.plot_rows(stats) == [
      ("a", "loso"), ("b", "loso"), ("b", "official"), ("c", "emoji")]


def test_finished_runs_are_skipped(tmp_path, monkeypatch):
  folder = tmp_path / "sweep"
  folder.mkdir()
  (folder / "sweep.py").write_text(
      "CONFIG = 'configs/av_digits.py'\nCOMMON = {}\nUNIMODAL = ()\n"
      "VARIANTS = {'v': ('', {})}\nPROTOCOLS = {'p': {'f1': {}, 'f2': {}}}\n")
  root = tmp_path / "runs"
  done_cmd = run_sweep.display(run_sweep.command(
      "configs/av_digits.py", root / "p/f1/v", {})).replace(str(root), "runs/sweep")
  (folder / "results.json").write_text(json.dumps(
      {"p/f1/v": dict(record(0.5), command=done_cmd)}))
  ran = []
  monkeypatch.setattr(run_sweep, "run", lambda cmd, workdir: (
      ran.append(workdir), record(0.7))[1])
  monkeypatch.setattr(sys, "argv", ["run_sweep.py", str(folder), "--workdir",
                                    str(root)])
  run_sweep.main()
  assert ran == [root / "p/f2/v"]
  records = json.loads((folder / "results.json").read_text())
  assert records["p/f1/v"]["results"]["test"]["accuracy"] == 0.5
  assert records["p/f2/v"]["results"]["test"]["accuracy"] == 0.7


SECTIONED = types.SimpleNamespace(SECTIONS={
    "digits": SWEEP,
    "retrieval": types.SimpleNamespace(
        CONFIG="configs/emoji_image_text.py", COMMON={},
        VARIANTS={"cnn+gru": ("text=gru", {})}, UNIMODAL=(),
        METRIC="image_to_text_recall_at_1",
        RECIPE=lambda config, overrides: f"recipe of {config}",
        PROTOCOLS={"seeds": {"s0": {"data.split_seed": 0},
                             "s1": {"data.split_seed": 1}}})})


def test_sections_name_runs_and_tables_and_report_their_metric():
  runs = run_sweep.plan(SECTIONED)
  assert list(runs)[:2] == ["digits/loso/a/image_only", "digits/loso/a/gated"]
  assert runs["retrieval/seeds/s1/cnn+gru"] == [
      "configs/emoji_image_text.py:text=gru", {"data.split_seed": 1}]
  assert run_sweep.section_of(SECTIONED, "retrieval/seeds/s0/cnn+gru") is (
      SECTIONED.SECTIONS["retrieval"])
  retrieval = lambda r: {"results": {"test": {"image_to_text_recall_at_1": r}},
                         "run_info": {}, "wall_seconds": 1.0, "command": "c"}
  records = {"digits/loso/a/gated": record(0.97),
             "retrieval/seeds/s0/cnn+gru": retrieval(0.25),
             "retrieval/seeds/s1/cnn+gru": retrieval(0.35)}
  stats = run_sweep.summarize(SECTIONED, records)
  assert stats["retrieval/seeds"]["cnn+gru"]["accuracy"] == pytest.approx(0.3)
  assert stats["retrieval/seeds"]["cnn+gru"]["macro_f1"] is None
  assert stats["digits/loso"]["gated"]["accuracy"] == 0.97
  text = run_sweep.table(SECTIONED, records)
  assert "### retrieval/seeds (2 folds)" in text
  assert "| model | test image_to_text_recall_at_1 |" in text
  assert ("| cnn+gru | 0.3000 ± 0.0707 | 0.2500 | — |" in text
          and "| recipe of configs/emoji_image_text.py:text=gru |" in text)
  assert "| retrieval/seeds/s1/cnn+gru | 0.3500 | `c` |" in text
