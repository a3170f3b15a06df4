"""docs/clusters.md and scripts/slurm_multinode.sbatch name only flags that
exist: every `launch.py` flag in `launch.py --helpfull`, every
`run_sweep.py` flag in its `--help`, every `--slurm KEY=VALUE` a submitit
parameter. (tests/test_docs.py runs the page's commands; the sbatch
template and the launch.py flags given to it are checked here.)"""

import pathlib
import re
import shlex
import subprocess
import sys
from typing import Dict, List, Set

import pytest
import submitit

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "clusters.md"
TEMPLATE = REPO / "scripts" / "slurm_multinode.sbatch"
sys.path.insert(0, str(REPO / "experiments"))
import executors  # noqa: E402  pylint: disable=wrong-import-position


def help_flags(*args: str) -> Set[str]:
  """The flags a program's help lists (absl --helpfull or argparse --help),
  not those its description quotes: entries indented by two spaces (absl's
  help exits with status 1)."""
  text = subprocess.run([sys.executable, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120).stdout
  listing = re.split(r"^(?:flags|options):$", text, maxsplit=1, flags=re.M)
  assert len(listing) == 2, text[-2000:]
  return set(re.findall(r"^  (?:-\w, )?--(?:\[no\])?(\w+)", listing[1], re.M))


def _split(line: str) -> List[List[str]]:
  """A command line's words; a gcloud ssh's `--command="..."` opened."""
  words = shlex.split(line)
  inner = [w.split("=", 1)[1] for w in words if w.startswith("--command=")]
  return [shlex.split(w) for w in inner] or [words]


def commands(source: pathlib.Path) -> List[List[str]]:
  """The commands of the page (fenced shell lines, inline code spans; a
  span of flags alone is launch.py's) or of the template (its lines that
  are not comments), continuations joined, split into words."""
  text = source.read_text().replace("\\\n", " ")
  if source.suffix == ".sbatch":
    lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
  else:
    fenced = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    lines = [l for block in fenced for l in block.splitlines()]
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    lines += [f"launch.py {s}" if s.startswith("--") else s
              for s in re.findall(r"`([^`]+)`", " ".join(prose.split()))]
  return [words for l in lines if l.strip() for words in _split(l)]


def flags_of(source: pathlib.Path) -> Dict[str, Set[str]]:
  """`{"launch.py": flags, "run_sweep.py": flags, "--slurm": pairs}` the
  commands of `source` give (a `--config.KEY` override counts as --config;
  arguments of scripts/slurm_multinode.sbatch after its CONFIG and WORKDIR
  are launch.py's)."""
  found = {"launch.py": set(), "run_sweep.py": set(), "--slurm": set()}
  for words in commands(source):
    program = None
    for i, word in enumerate(words):
      if word.endswith(("launch.py", "run_sweep.py")):
        program = word.rsplit("/", 1)[-1]
      elif word.endswith("slurm_multinode.sbatch"):
        program = "launch.py"
        words[i + 1:i + 3] = ["CONFIG", "WORKDIR"][:len(words) - i - 1]
      elif word in ("&&", "||", ";", "|"):
        program = None
      elif program and word.startswith("--"):
        found[program].add(re.split(r"[.=]", word[2:])[0])
        if word == "--slurm" and words[i + 1] != "KEY=VALUE":
          found["--slurm"].add(words[i + 1])
  return found


@pytest.fixture(scope="module")
def launch_flags():
  return help_flags("launch.py", "--helpfull")


@pytest.mark.parametrize("source", [PAGE, TEMPLATE], ids=lambda p: p.name)
def test_named_flags_exist(source, launch_flags, tmp_path):
  found = flags_of(source)
  assert {"config", "workdir", "jax_distributed"} <= found["launch.py"]
  assert found["launch.py"] <= launch_flags, found["launch.py"] - launch_flags
  if source == PAGE:
    assert {"coordinator_address", "num_processes", "process_id",
            "compilation_cache_dir"} <= found["launch.py"]
    sweep = help_flags("experiments/run_sweep.py", "--help")
    assert {"executor", "parallel", "devices", "slurm"} <= found["run_sweep.py"]
    assert found["run_sweep.py"] <= sweep, found["run_sweep.py"] - sweep
    params = executors.slurm_parameters(sorted(found["--slurm"]))
    assert {"timeout_min", "slurm_partition"} <= set(params)
    # submitit refuses a parameter its SlurmExecutor does not know.
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="debug")
    executor.update_parameters(**params)


def test_template_is_valid_bash_and_requeues_on_status_75():
  subprocess.run(["bash", "-n", str(TEMPLATE)], check=True, timeout=30)
  text = TEMPLATE.read_text()
  assert re.search(r"^srun python launch\.py .*--jax_distributed", text.replace(
      "\\\n", " "), re.M)
  assert "#SBATCH --requeue" in text and '-eq 75' in text
  assert "scontrol requeue" in text
