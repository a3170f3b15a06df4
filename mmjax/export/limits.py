"""The model card's "Intended use and known limits" section: what the
model was and was not evaluated on, from its config and results.

The measured figures it points to are the repository's own (README.md's
"Leave-one-speaker-out" table, experiments/robustness/RESULTS.md); they
are referred to, not copied, so a card never quotes a stale number.
"""

from typing import Any, List, Mapping, Optional

from etils import epath


def _av_digits(data: Mapping[str, Any]) -> List[str]:
  lines = [
      "- Data: 28x28 grayscale MNIST digits paired with FSDD recordings of "
      "the same spoken digit (English, 8 kHz, five speakers: george, "
      "jackson, nicolas, theo, yweweler); every evaluated pair shows one "
      "digit in both modalities. Not evaluated on other writers' or "
      "cameras' images, other speakers' accents, other languages, "
      "recordings longer than the `pp_eval` crop, or mismatched pairs."]
  test, validation = data.get("test_speakers", ()), data.get(
      "validation_speakers", ())
  if test:
    lines.append(f"- Speaker-independent test: every recording of "
                 f"{', '.join(test)} is in the test split and none in "
                 "training, so the test figure is for a new voice (one "
                 "speaker: a small sample of voices).")
  else:
    lines.append(
        "- The test recordings are by the speakers heard in training "
        "(FSDD's official split by take index), so the test figure does "
        "not measure new voices; with the audio alone the official split "
        "is near 1.0 while new speakers are far lower. For voices not "
        "heard in training see the leave-one-speaker-out figures of "
        "README.md and experiments/robustness/RESULTS.md, and train with "
        "`--config.data.test_speakers` to measure this recipe on one.")
  if validation:
    lines.append(f"- Validation speakers (never trained on): "
                 f"{', '.join(validation)}.")
  return lines


DATASET_LIMITS = {"av_digits": _av_digits}


def limits_section(config: Mapping[str, Any], results: Optional[Mapping],
                   workdir: epath.Path) -> List[str]:
  """The section's Markdown lines for the config (a dict) of `workdir`."""
  data = config.get("data", {})
  evaluated = ", ".join(results) if results else "nothing yet"
  lines = ["## Intended use and known limits", "",
           "- Intended use: research on multimodal learning with mmjax; "
           "classification of inputs prepared exactly as `pp_eval` above "
           "(the same modalities, sizes and sample rates). Not for "
           "decisions about people.",
           f"- Evaluated on: the `{data.get('name', '?')}` splits {evaluated}"
           + (" and the datasets of `evaluations/`"
              if (workdir / "evaluations").exists() else "") + "."]
  lines += DATASET_LIMITS.get(data.get("name"), lambda _: [
      "- Not evaluated on data from other sources than this dataset."])(data)
  dropout = {m: p for m, p in config.get("modality_dropout", {}).items()
             if p and m in config.get("modalities", ())}
  robustness = (workdir / "robustness" / "robustness.json").exists()
  lines.append(
      "- Missing modalities: " + (
          "trained with modality dropout " + ", ".join(
              f"{m} {p}" for m, p in sorted(dropout.items())) if dropout else
          "not trained with missing modalities") + "; " + (
          "measured in robustness/" if robustness else
          "not measured (`--mode=robustness` measures it)") + ".")
  lines.append("- Corruptions (noise, occlusion): " + (
      "measured in robustness/." if robustness else
      "not measured (`--mode=robustness` measures them)."))
  return lines
