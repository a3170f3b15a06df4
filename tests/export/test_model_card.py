"""`mmjax.export.model_card.write_model_card`: the card's figures are the
workdir's. Here on a workdir's files written by the test (no training);
tests/export/test_export.py checks the card of a trained run."""

import json
import re

import pytest

from configs import av_digits
from mmjax.export import model_card

RESULTS = {
    "validation": {"accuracy": 0.987, "macro_f1": 0.98712345, "loss": 0.0456,
                   "macro_precision": 0.9875, "macro_recall": 0.98649,
                   "num_examples": 1000},
    "test": {"accuracy": 0.9935, "macro_f1": 0.99351, "loss": 0.0234,
             "macro_precision": 0.99, "macro_recall": 0.9936,
             "num_examples": 2000},
}
RUN_INFO = {"num_params": 123456, "train_seconds": 98.7, "devices": 1,
            "platform": "cpu", "jax": "0.10.2"}


@pytest.fixture
def workdir(tmp_path):
  """The files training writes that the card reads."""
  (tmp_path / "results.json").write_text(json.dumps(RESULTS))
  (tmp_path / "run_info.json").write_text(json.dumps(RUN_INFO))
  (tmp_path / "launches.jsonl").write_text(
      '{"time": "2026-12-01T10:00:00+0000", "start_step": 0}\n'
      '{"time": "2026-12-01T11:00:00+0000", "start_step": 400}\n')
  return tmp_path


def card_metrics(card: str):
  """`{split: {metric: cell text}}` of the card's first metrics table."""
  lines = card.split("## Metrics", 1)[1].splitlines()
  first = next(i for i, line in enumerate(lines) if line.startswith("|"))
  table = []
  for line in lines[first:]:
    if not line.startswith("|"):
      break
    table.append(line)
  rows = [line.strip("|").split(" | ") for line in table
          if line.startswith("| ")]
  header = [c.strip() for c in rows[0]]
  assert header[0] == "split", header
  return {cells[0].strip(): dict(zip(header[1:], (c.strip() for c in cells[1:])))
          for cells in rows[1:] if cells[0].strip() != "split"}


def mismatches(card: str, results) -> list:
  """Where the card's table differs from `results` (results.json)."""
  table = card_metrics(card)
  found = []
  for split, metrics in results.items():
    for key, value in metrics.items():
      expected = f"{value:.4f}" if isinstance(value, float) else str(value)
      if table.get(split, {}).get(key) != expected:
        found.append((split, key, table.get(split, {}).get(key), expected))
  if set(table) != set(results):
    found.append(("splits", sorted(table), sorted(results)))
  return found


def test_card_figures_are_the_workdirs(workdir):
  config = av_digits.get_config()
  path = model_card.write_model_card(config, workdir)
  assert path == workdir / "model_card.md"
  card = path.read_text()
  assert not mismatches(card, RESULTS)
  assert card_metrics(card)["validation"]["macro_f1"] == "0.9871"
  assert "- Parameters: 123,456\n" in card
  assert f"mmjax commit {model_card.mmjax_commit()}." in card
  assert model_card.mmjax_commit() != "unknown"  # tests run in a checkout
  assert "- Modalities: image, audio" in card
  assert "- Fusion: `early_fusion` " in card
  assert "- Encoder `audio`: `spectrogram_cnn` " in card
  assert "- Unimodal auxiliary heads: yes" in card
  assert f"- `pp_eval.audio`: `{config.pp_eval.audio}`" in card
  assert "- Steps: 1200, global batch size 64, seed 0" in card
  assert ("- Trained: 2026-12-01T10:00:00+0000 to 2026-12-01T11:00:00+0000 "
          "(2 launch(es))") in card
  assert "- Examples per evaluated split: validation 1000, test 2000" in card
  assert "does not measure new voices" in card  # the official split
  assert "trained with modality dropout audio 0.5, image 0.3" in card
  assert "Missing modalities" in card and "not measured" in card


def test_a_changed_result_changes_the_card(workdir):
  """Mutation check: the card is generated from results.json, and the
  comparison above notices a figure that is not results.json's."""
  changed = json.loads(json.dumps(RESULTS))
  changed["test"]["accuracy"] -= 0.01
  (workdir / "results.json").write_text(json.dumps(changed))
  card = model_card.write_model_card(av_digits.get_config(), workdir
                                     ).read_text()
  assert not mismatches(card, changed)
  assert mismatches(card, RESULTS) == [("test", "accuracy", "0.9835", "0.9935")]


def test_other_evaluations_and_robustness_are_listed(workdir):
  other = workdir / "evaluations" / "official_seed0"
  other.mkdir(parents=True)
  (other / "results.json").write_text(json.dumps({"test": {
      "accuracy": 0.5, "num_examples": 10}}))
  (other / "source.json").write_text(json.dumps({
      "dataset": "av_digits/x/1.0.0", "manual_dir": "/other",
      "checkpoint_step": 1200}))
  (workdir / "robustness").mkdir()
  (workdir / "robustness" / "robustness.json").write_text(json.dumps({
      "modality_subsets_accuracy": {"test": {"image+audio": 0.99,
                                             "image": 0.97, "audio": 0.5}}}))
  card = model_card.card_text(av_digits.get_config().to_dict(), workdir)
  assert ("`evaluations/official_seed0` (dataset av_digits/x/1.0.0, "
          "manual_dir /other, step 1200):") in card
  assert "| test | 0.5000 | 10 |" in card
  assert "- test: image+audio 0.9900, image 0.9700, audio 0.5000" in card
  assert "measured in robustness/" in card


def test_speaker_independent_run_says_so(workdir):
  config = av_digits.get_config()
  config.data.test_speakers = ("theo",)
  text = model_card.card_text(config.to_dict(), workdir)
  assert "every recording of theo is in the test split" in text
  assert "does not measure new voices" not in text


def test_card_without_results_says_what_is_missing(tmp_path):
  text = model_card.card_text(av_digits.get_config().to_dict(), tmp_path)
  assert "No results.json: the run has not finished training." in text
  assert "- Parameters: unknown (no run_info.json" in text
  assert re.search(r"^# Model card: ", text, re.M)
