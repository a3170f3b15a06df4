"""The docs' worked examples (docs/write_your_own_*.md), followed as a new
user would: the page's code saved into a copy of the repository where the
page says, and the page's own `launch.py` command run there for a few steps.
"""

import pathlib
import re
import shlex
import shutil
import subprocess
import sys
from typing import Dict, List, Mapping, Sequence

from tests.train.conftest import TINY_OVERRIDES, as_flags

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# A few steps, one checkpoint, the validation split evaluated once.
SHORT_RUN = {"num_train_steps": 4, "checkpoint_every_steps": 4,
             "eval_every_steps": 4, "eval_splits": "('validation',)"}


def page_blocks(page: pathlib.Path, language: str) -> List[str]:
  """The page's fenced blocks in `language`, in order."""
  return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(),
                    re.S | re.M)


def only_python_block(page: pathlib.Path) -> str:
  """The page's one python block (the example the user saves)."""
  (code,) = page_blocks(page, "python")
  return code


def saved_files(page: pathlib.Path) -> Dict[str, str]:
  """The files the page has the user create: `{folder/name: code}` for each
  python block followed by "Save it as `name` in `folder/`"."""
  found = re.findall(r"^```python\n(.*?)^```\n+Save it as `([^`/]+)` in\s+"
                     r"`([^`]+/)`", page.read_text(), re.S | re.M)
  return {folder + name: code for code, name, folder in found}


def copy_with_saved_files(tmp_path_factory, page: pathlib.Path,
                          expected: Mapping[str, str]) -> pathlib.Path:
  """A repository copy (`make_copy`) with the files the page has the user
  create, after checking that they are exactly `expected`."""
  files = saved_files(page)
  assert files == dict(expected), set(files)
  return make_copy(tmp_path_factory.mktemp("user") / "mmjax", files)


def short_run_overrides(manual_dir: pathlib.Path, data_dir: pathlib.Path,
                        replaced: Sequence[str] = ()) -> Dict[str, object]:
  """The tests' tiny av_digits settings (tests/train/conftest.py) without
  the keys containing one of `replaced` (those of the part the example
  replaces), for a `SHORT_RUN` on the real data."""
  overrides = {k: v for k, v in TINY_OVERRIDES.items()
               if not any(r in k for r in replaced)}
  overrides.update({**SHORT_RUN, "data.manual_dir": str(manual_dir),
                    "data.data_dir": str(data_dir)})
  return overrides


def launch_command(page: pathlib.Path) -> List[str]:
  """The page's one `launch.py` command (its bash blocks), split as the
  shell would.

  Raises:
    ValueError: unless exactly one line of the bash blocks runs launch.py.
  """
  lines = [line for block in page_blocks(page, "bash")
           for line in block.splitlines() if "launch.py" in line]
  if len(lines) != 1:
    raise ValueError(f"{page.name}: {len(lines)} launch.py commands")
  return shlex.split(lines[0])


def make_copy(dest: pathlib.Path, files: Mapping[str, str]) -> pathlib.Path:
  """Copies the repository's files (as `git ls-files` lists them,
  uncommitted changes included) to `dest` and writes `files` (`{path
  relative to the repository: text}`) there, as the user saves them.

  Raises:
    AssertionError: if one of `files` is already part of the repository.
  """
  listed = subprocess.run(
      ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
      cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
  for name in listed.splitlines():
    source = REPO_ROOT / name
    if source.is_file():
      (dest / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(source, dest / name)
  for name, text in files.items():
    assert not (dest / name).exists(), f"{name} is part of the repository"
    (dest / name).parent.mkdir(parents=True, exist_ok=True)
    (dest / name).write_text(text)
  return dest


def run_launch(copy: pathlib.Path, command: List[str], workdir: pathlib.Path,
               overrides: Dict[str, object]) -> subprocess.CompletedProcess:
  """Runs the page's `python launch.py ...` command in `copy`, with its
  `--workdir` replaced by `workdir` and `overrides` (`{config key: value}`)
  appended as flags."""
  assert command[:2] == ["python", "launch.py"], command
  command = list(command)
  command[command.index("--workdir") + 1] = str(workdir)
  return subprocess.run([sys.executable, *command[1:], *as_flags(overrides)],
                        cwd=copy, capture_output=True, text=True, timeout=600)
