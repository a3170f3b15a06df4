"""`pip install .` installs the library: the wheel holds every module of
mmjax/ and nothing else of the repository, and its metadata pins the
dependencies of requirements.txt (the `test` extra those of
requirements-test.txt) under the Apache-2.0 license."""

import email
import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Not the project's: the virtual environment, run outputs and build leftovers.
SKIPPED = shutil.ignore_patterns(".git", ".venv", "runs", "workdirs", "build",
                                 "*.egg-info", "__pycache__", ".pytest_cache",
                                 "*.pyc", "dist")


def requirements(name: str):
  """The requirement lines of a requirements file, comments left out."""
  lines = (l.split("#", 1)[0].strip()
           for l in (REPO / name).read_text().splitlines())
  return [l for l in lines if l]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
  """The wheel `pip wheel` builds from a copy of the checkout (offline, no
  build isolation, so nothing is downloaded and the checkout stays clean)."""
  setuptools = importlib.metadata.version("setuptools")
  assert int(setuptools.split(".")[0]) >= 77, (
      f"setuptools {setuptools}: pyproject.toml's build needs >= 77 (SPDX "
      "license); torch of requirements-test.txt brings it")
  source = tmp_path_factory.mktemp("source") / "mmjax"
  shutil.copytree(REPO, source, ignore=SKIPPED)
  out = tmp_path_factory.mktemp("wheel")
  proc = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps",
       "--no-build-isolation", "--no-index", "-w", str(out), str(source)],
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  (path,) = out.glob("mmjax-*.whl")
  with zipfile.ZipFile(path) as archive:
    yield archive


def test_wheel_holds_every_module_and_only_the_library(wheel):
  names = wheel.namelist()
  modules = {n for n in names if n.endswith(".py")}
  tree = {p.relative_to(REPO).as_posix()
          for p in (REPO / "mmjax").rglob("*.py")
          if "__pycache__" not in p.parts}
  assert modules == tree
  top_level = {n.split("/", 1)[0] for n in names}
  assert top_level == {"mmjax", "mmjax-0.1.0.dist-info"}
  for other in ("tests/", "configs/", "experiments/", "benchmarks/",
                "scripts/", "launch.py"):
    assert not any(n.startswith(other) for n in names), other


def test_metadata_pins_the_requirement_files_and_the_license(wheel):
  metadata = email.message_from_bytes(
      wheel.read("mmjax-0.1.0.dist-info/METADATA"))
  requires = metadata.get_all("Requires-Dist")
  assert [r for r in requires if "extra ==" not in r] == requirements(
      "requirements.txt")
  test_extra = [re.sub(r"\s*;\s*extra\s*==\s*\"test\"$", "", r)
                for r in requires if "extra ==" in r]
  assert test_extra == requirements("requirements-test.txt")
  assert all('extra == "test"' in r for r in requires if "extra ==" in r)
  assert metadata.get_all("Provides-Extra") == ["test"]
  assert metadata["License-Expression"] == "Apache-2.0"
  assert metadata["Name"] == "mmjax"
  license_text = wheel.read("mmjax-0.1.0.dist-info/licenses/LICENSE").decode()
  assert license_text == (REPO / "LICENSE").read_text()
  assert "Apache License" in license_text and "Version 2.0" in license_text
