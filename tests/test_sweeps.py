"""Every run of every recorded sweep (experiments/**/sweep.py) is a valid
launch.py command: its config file, argument and overrides parse the way
launch.py parses them, so a sweep cannot spend hours to fail on a key."""

import pathlib
import sys

from absl import flags
from ml_collections import config_flags
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import run_sweep  # noqa: E402  pylint: disable=wrong-import-position

SWEEPS = sorted(p.parent.relative_to(ROOT)
                for p in (ROOT / "experiments").rglob("sweep.py"))


def parse(cmd):
  """The ConfigDict launch.py builds from `cmd` (python launch.py ...)."""
  argv = [cmd[1], *cmd[2:]]
  values = flags.FlagValues()
  # sys_argv: config_flags defines a flag per `--config.<key>` it finds there.
  config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                  lock_config=True, sys_argv=argv)
  flags.DEFINE_string("workdir", None, "", flag_values=values)
  values(argv)
  return values.config


def test_every_sweep_is_found():
  assert {"experiments/zoo", "experiments/robustness",
          "experiments/fusion_ablation"} <= {str(s) for s in SWEEPS}


@pytest.mark.parametrize("folder", SWEEPS, ids=str)
def test_every_run_parses_like_launch(folder, monkeypatch):
  monkeypatch.chdir(ROOT)
  sweep = run_sweep.load_sweep(ROOT / folder)
  runs = run_sweep.plan(sweep, "runs/x")
  assert runs
  for name, (config, overrides) in runs.items():
    c = parse(run_sweep.command(config, pathlib.Path("runs/x") / name,
                                overrides))
    for key, value in overrides.items():
      node = c
      for part in key.split("."):
        node = node[part]
      assert node == (list(value) if isinstance(node, list) else value), (
          f"{folder} {name}: {key} = {node!r}, the sweep sets {value!r}")
