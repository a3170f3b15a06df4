"""The shell commands of README.md and docs/*.md still work as written.

Every fenced `bash` block's commands, and every inline code span that is a
whole command (`python ...`, `pip ...`, `srun ...`, `gcloud ...`, or a
`--config=configs/...` argument), is checked without training:
- `python launch.py ...`: its flags parsed, its config built and its
  `--config.*` overrides applied by launch.py's own `parse_flags` (one
  subprocess for all of them), and every override's value read back from
  the config;
- other `python <script>`: the script exists and its `--help` names every
  flag given; `run_sweep.py` lists the runs its `--only` selects;
- `pip install`: the requirement files exist, a pinned package's version is
  the one in the requirement files;
- `python -m pytest`: exactly the command `.ci/run` runs;
- every repository path in a command exists (a file a page has the user
  create, "Save it as `name` in `folder/`", is read from the page).
Placeholders (`DIR`, `/path/to/...`, elided `...`) are replaced by the
table `PLACEHOLDERS` below; the manifests the docs only describe are built
from the real data in ../shared/data. Every relative link of the pages must
resolve, anchors included, and every repository path (`mmjax/...`,
`tests/...`, ...) and `mmjax.` module the pages name must exist.
"""

import ast
import dataclasses
import functools
import gzip
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tomllib
from typing import Dict, List, Optional, Tuple

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
DATA = REPO.parent / "shared" / "data"
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
REPO_DIRS = ("configs/", "experiments/", "benchmarks/", "scripts/", "tests/",
             "mmjax/", "docs/")

# Literal text of a command -> what the test runs instead, and why.
PLACEHOLDERS = {
    # The synopsis of launch.py (docs/running_experiments.md): one instance.
    "configs/av_digits.py[:fusion=BLOCK,image=ENCODER,audio=ENCODER]":
        "configs/av_digits.py:fusion=cross_attention,image=vit,"
        "audio=spectrogram_transformer",
    "[--config.KEY=VALUE ...]": "",
    # Elided arguments (several processes, simulated devices): any config.
    "--config ...": "--config configs/av_digits.py",
    "launch.py ...": "launch.py --config configs/av_digits.py --workdir DIR",
    # The user's manifests, built by the `manifests` fixture.
    "/path/to/data.csv": "{manifests}/data.csv",
    "/path/to/clips.csv": "{manifests}/clips.csv",
    # A local CLIP directory (docs/pretrained.md): a tiny random one.
    "/ckpt/clip": "{manifests}/clip",
    # kill_resume_trials.py's launch arguments beside the config.
    " ARGS": "",
}
# Inline config-file arguments quoted without their file.
CONFIG_ARGUMENTS = {":manifest=": "--config=configs/manifest.py"}

# Inline flags quoted alone (`--config.aux_loss_weight=1.0`): launch.py
# arguments, applied to the config the page is about, or another script's.
FRAGMENT_CONFIGS = {
    "data.md": "configs/manifest.py:manifest=/path/to/data.csv",
    "video.md": "configs/av_digit_clips.py",
    # The config the page has the user write (see `user_files`).
    "write_your_own_dataset.md": "configs/fsdd_digits.py"}
FRAGMENT_DEFAULT_CONFIG = "configs/av_digits.py"
FRAGMENT_SCRIPTS = {"--write_results": "benchmarks/compare.py",
                    "--write_section": "benchmarks/train_step.py"}
FRAGMENT_PLACEHOLDERS = {
    "=K": "=2", "=N": "=2", "=I": "=0", "=HOST:PORT": "=localhost:12345",
    "=<workdir>": "=runs/image_only",
    "[--reference_workdir LATE_FUSION_DIR]": "--reference_workdir DIR",
    "[--unimodal_workdirs=IMAGE_ONLY_DIR,AUDIO_ONLY_DIR]":
        "--unimodal_workdirs=DIR_A,DIR_B",
    "[--corruptions=NAME,...]": "--corruptions=none",
}
# Not checked here: the docs say launch.py refuses it, which happens when the
# model is built, after the flags (tests/models/test_multimodal.py tests it).
UNCHECKED_FRAGMENTS = ("--config.model.fusion.name=summary_cross_attention",)


@dataclasses.dataclass(frozen=True)
class Command:
  page: pathlib.Path
  line: int
  text: str

  def __str__(self):
    return f"{self.page.relative_to(REPO)}:{self.line}"


def _without_fences(text: str) -> str:
  """`text` with fenced blocks blanked (line numbers kept)."""
  return re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"),
                text, flags=re.S | re.M)


def commands_of(page: pathlib.Path) -> List[Command]:
  """The page's shell commands, continuation lines joined."""
  found = []
  lines = page.read_text().split("\n")
  language, pending, start = None, "", 0
  for number, line in enumerate(lines, start=1):
    if line.startswith("```"):
      language = None if language is not None else (line[3:].strip() or "-")
      continue
    if language not in SHELL_LANGUAGES:
      continue
    if not pending:
      start = number
    pending += line
    if line.endswith("\\"):
      pending = pending[:-1] + " "
      continue
    if pending.strip() and not pending.lstrip().startswith("#"):
      found.append(Command(page, start, pending.strip()))
    pending = ""
  text = _without_fences(page.read_text())
  for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
    span = " ".join(m.group(1).split())
    for prefix, config_file in CONFIG_ARGUMENTS.items():
      if span.startswith(prefix):
        span = f"{config_file}{span}"
    line = text.count("\n", 0, m.start()) + 1
    if re.match(r"([A-Z_]+=\S+ )*(python3?|pip|srun|gcloud) ", span) or (
        re.match(r"--config[= ]configs/", span)):
      found.append(Command(page, line, span))
    elif span.startswith("--") and span not in UNCHECKED_FRAGMENTS:
      for old, new in FRAGMENT_PLACEHOLDERS.items():
        span = span.replace(old, new)
      if span in FRAGMENT_SCRIPTS:
        found.append(Command(page, line, f"python {FRAGMENT_SCRIPTS[span]} "
                             f"{span}"))
      else:
        config = FRAGMENT_CONFIGS.get(page.name, FRAGMENT_DEFAULT_CONFIG)
        found.append(Command(page, line, f"python launch.py --config {config}"
                             f" --workdir DIR {span}"))
  return found


ALL_COMMANDS = [c for page in PAGES for c in commands_of(page)]


def substitute(text: str, workdir: str, manifests: str) -> Tuple[str, set]:
  """Replaces the placeholders; returns the text and the ones used."""
  used = set()
  for old, new in PLACEHOLDERS.items():
    if old in text:
      used.add(old)
      text = text.replace(old, new)
  text = re.sub(r"\b[A-Z_]*DIR\b(?!=)", workdir, text)
  return text.replace("{manifests}", manifests), used


def segments(tokens: List[str]) -> List[List[str]]:
  """A command line split at `&&`, `||`, `;` and `|`."""
  out = [[]]
  for t in tokens:
    if t in ("&&", "||", ";", "|"):
      out.append([])
    else:
      out[-1].append(t)
  return [s for s in out if s]


@dataclasses.dataclass
class Plan:
  """What one command asks of the repository."""
  launches: List[List[str]] = dataclasses.field(default_factory=list)
  scripts: List[Tuple[str, List[str]]] = dataclasses.field(default_factory=list)
  paths: List[str] = dataclasses.field(default_factory=list)
  requirement_files: List[str] = dataclasses.field(default_factory=list)
  pins: List[str] = dataclasses.field(default_factory=list)
  extras: List[str] = dataclasses.field(default_factory=list)
  pytest: Optional[List[str]] = None


def plan_python(args: List[str], plan: Plan, workdir: str) -> None:
  """`python <args>`: a launch.py run, a module or a script."""
  if args[:2] == ["-m", "pytest"]:
    plan.pytest = args
    valued = ("-n", "--dist", "-m", "-k")  # options whose value follows
    plan.paths += [a for previous, a in zip(args[1:], args[2:])
                   if not a.startswith("-") and previous not in valued]
    return
  if args[:2] == ["-m", "venv"]:
    return
  script, rest = args[0], args[1:]
  plan.paths.append(script)
  if script == "launch.py":
    plan.launches.append(rest)
    return
  own, launch_args = rest, None
  if "--" in rest:
    own, launch_args = rest[:rest.index("--")], rest[rest.index("--") + 1:]
  if any(a == "--config" or a.startswith("--config=") for a in own):
    # launch.py's config flag (benchmarks/train_step.py and the like): the
    # config file and its `--config.KEY=VALUE` overrides are checked as
    # launch.py's, the script's other flags against its --help.
    config_args, others, words = [], [], iter(own)
    for a in words:
      if a == "--config":
        config_args += [a, next(words)]
      elif a.startswith("--config"):
        config_args.append(a)
      else:
        others.append(a)
    plan.launches.append([*config_args, "--workdir", workdir])
    own = [*others, "--config"]
  plan.scripts.append((script, own))
  plan.paths += [a for a in own if a.startswith(REPO_DIRS)]
  if launch_args is not None:  # the scripts that run launch.py
    if "--workdir" not in " ".join(launch_args):
      launch_args = [*launch_args, "--workdir", workdir]
    plan.launches.append(launch_args)


def user_files(pages=PAGES) -> Dict[str, str]:
  """`{path: code}` of the files the pages have the user create ("Save it
  as `name` in `folder/`"), which the pages name but the repository lacks."""
  from tests.user_copy import saved_files  # pylint: disable=g-import-not-at-top
  return {path: code for page in pages
          for path, code in saved_files(page).items()}


def plan_of(command: Command, workdir: str, manifests: str,
            saved: Optional[pathlib.Path] = None) -> Plan:
  """What `command` asks of the repository; the user's files it names
  (`user_files`) are read from the folder `saved`."""
  text, _ = substitute(command.text, workdir, manifests)
  for path in user_files() if saved else ():
    text = re.sub(rf"(?<![\w/.]){re.escape(path)}", str(saved / path), text)
  plan = Plan()
  for words in segments(shlex.split(text, comments=True)):
    while words and re.match(r"^[A-Z_]+=", words[0]):  # environment
      words = words[1:]
    program, args = words[0], words[1:]
    if program in ("python", "python3"):
      plan_python(args, plan, workdir)
    elif program == "pip" and args[:1] == ["install"]:
      args = args[1:]
      while args:
        if args[0] == "-r":
          plan.requirement_files.append(args[1])
          args = args[2:]
        elif args[0] == "-e":
          args = args[1:]
        elif args[0].startswith("."):  # this project, with its extras
          plan.paths.append("pyproject.toml")
          plan.extras += re.findall(r"\w+", args[0].partition("[")[2])
          args = args[1:]
        else:
          plan.pins.append(args[0])
          args = args[1:]
    elif program == "srun":
      plan_python(args[args.index("python") + 1:], plan, workdir)
    elif program == "gcloud":
      inner = [a.split("=", 1)[1] for a in args if a.startswith("--command=")]
      assert inner or "ssh" not in args, f"{command}: a gcloud ssh without --command"
      for part in segments(shlex.split(inner[0])) if inner else ():
        if part[0] == "python":
          plan_python(part[1:], plan, workdir)
    elif program == "sbatch":  # its launch.py flags: tests/test_clusters_docs.py
      plan.paths += [a for a in args if a.startswith(REPO_DIRS)]
    elif program in (".", "source", "cd"):
      pass
    elif program.startswith("--config"):  # launch.py's arguments alone
      plan.launches.append([*words, "--workdir", workdir])
    else:
      raise AssertionError(f"{command}: no check for {program!r}: teach "
                           f"tests/test_docs.py what {command.text!r} needs")
    for launch_args in plan.launches:
      for i, a in enumerate(launch_args):
        value = a.split("=", 1)[1] if a.startswith("--config=") else (
            launch_args[i + 1] if a == "--config" else None)
        if value:
          plan.paths.append(value.split(":", 1)[0])
  return plan


# The user manifests that docs/data.md describes, from the real data.

def _mnist_images(count: int):
  import numpy as np  # pylint: disable=g-import-not-at-top
  path = DATA / "mnist" / "t10k-first8000-images-idx3-ubyte.gz"
  with gzip.open(path) as f:
    raw = f.read()
  return np.frombuffer(raw, np.uint8, offset=16)[:count * 784].reshape(
      count, 28, 28)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory, tiny_clip_dir) -> pathlib.Path:
  """data.csv (image, audio, text, video as a frame folder, label, split)
  and clips.csv (video only) over MNIST digits and FSDD recordings, and
  clip/, the tiny CLIP checkpoint of `tiny_clip_dir`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("manifests")
  (root / "clip").symlink_to(tiny_clip_dir)
  images = _mnist_images(8)
  recordings = sorted((DATA / "fsdd" / "recordings").glob("*.wav"))
  by_digit = {r.name[0]: r for r in reversed(recordings)}
  names = ["zero", "one"]
  data_rows, clip_rows = [], []
  for i, split in enumerate(["train", "train", "validation", "test"]):
    digit = i % 2
    Image.fromarray(images[i]).save(root / f"{i}.png")
    frames = root / f"clip_{i}"
    frames.mkdir()
    for f in range(3):
      Image.fromarray(images[i + f]).save(frames / f"{f:04d}.png")
    data_rows.append(f"{i}.png,{by_digit[str(digit)]},a spoken "
                     f"{names[digit]},clip_{i},{names[digit]},{split}")
    clip_rows.append(f"clip_{i},{names[digit]},{split}")
  (root / "data.csv").write_text(
      "image,audio,text,video,label,split\n" + "\n".join(data_rows) + "\n")
  (root / "clips.csv").write_text("video,label,split\n" +
                                  "\n".join(clip_rows) + "\n")
  return root


def registering_examples() -> List[str]:
  """The pages' Python examples that register a block or encoder, which
  their pages then train (`--config ...:fusion=<its name>`)."""
  return [code for page in PAGES
          for code in re.findall(r"^```python\n(.*?)^```", page.read_text(),
                                 re.S | re.M) if ".register(" in code]


def parse_launch_flags(argvs: List[List[str]]) -> List[dict]:
  """In a fresh process: launch.py's `parse_flags` on each argv (config
  file loaded, overrides applied); per argv its error or the values of its
  overrides, `modalities` and `data.manifest`."""
  sys.path.insert(0, str(REPO))
  import launch  # pylint: disable=g-import-not-at-top
  for code in registering_examples():
    exec(compile(code, "docs example", "exec"),  # pylint: disable=exec-used
         {"__name__": "docs_example"})
  results = []
  for argv in argvs:
    lookups = [a for a in argv if a.startswith("--config.") and "=" not in a]
    argv = [a for a in argv if a not in lookups]  # a key named, no value
    sys.argv = ["launch.py", *argv]  # config_flags reads the overrides here
    launch.FLAGS.unparse_flags()
    for name in list(launch.FLAGS):  # the previous config's override flags
      if name.startswith("config."):
        delattr(launch.FLAGS, name)
    try:
      launch.parse_flags(sys.argv)
    except SystemExit as e:
      results.append({"error": str(e)})
      continue
    except Exception as e:  # pylint: disable=broad-except
      results.append({"error": f"{type(e).__name__}: {e}"})
      continue
    config = launch.FLAGS.config
    overrides = {}
    try:
      for a in argv + lookups:
        if a.startswith("--config."):
          key = a[len("--config."):].split("=", 1)[0]
          value = config
          for part in key.split("."):
            value = value[part]
          overrides[key] = json.loads(json.dumps(value, default=str))
    except KeyError as e:
      results.append({"error": f"no config key {key!r} ({e})"})
      continue
    results.append({"error": None, "overrides": overrides,
                    "modalities": list(config.get("modalities", ())),
                    "manifest": config.get("data", {}).get("manifest")})
  return results


@pytest.fixture(scope="module")
def launched(manifests, tmp_path_factory) -> Dict[str, tuple]:
  """Every command's plan, and its launch.py parses (one subprocess)."""
  workdir = tmp_path_factory.mktemp("workdir") / "run"
  # A trained av_digits run's config, for the commands that give a workdir
  # alone (launch.py reads its config.json back).
  workdir.mkdir()
  from configs import av_digits  # pylint: disable=g-import-not-at-top
  (workdir / "config.json").write_text(
      av_digits.get_config().to_json_best_effort())
  workdir = str(workdir)
  saved = tmp_path_factory.mktemp("user_files")
  for path, code in user_files().items():
    (saved / path).parent.mkdir(parents=True, exist_ok=True)
    (saved / path).write_text(code)
  plans = {}
  for c in ALL_COMMANDS:
    try:
      plans[str(c)] = plan_of(c, workdir, str(manifests), saved)
    except (AssertionError, ValueError, IndexError) as e:  # in its own test
      plans[str(c)] = e
  argvs = [a for p in plans.values() if isinstance(p, Plan) for a in p.launches]
  proc = subprocess.run(
      [sys.executable, __file__], input=json.dumps(argvs), cwd=REPO,
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = iter(json.loads(proc.stdout.strip().splitlines()[-1]))
  return {name: (p, [next(results) for _ in p.launches]
                  if isinstance(p, Plan) else [])
          for name, p in plans.items()}


def _expected(value: str):
  try:
    return json.loads(json.dumps(ast.literal_eval(value)))
  except (ValueError, SyntaxError):
    return value


@functools.lru_cache(maxsize=None)
def script_flags(script: str) -> frozenset:
  """The flags `script --help` lists (argparse or absl), not those its
  description quotes."""
  proc = subprocess.run([sys.executable, script, "--help"], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  text = proc.stdout + proc.stderr
  listing = re.split(r"^(?:options|optional arguments|flags):$", text,
                     maxsplit=1, flags=re.M)
  assert len(listing) == 2, f"{script} --help:\n{text[-2000:]}"
  return frozenset(re.findall(r"^\s*(?:-\w, )?--(?:\[no\])?(\w+)",
                              listing[1], re.M))


def _pins(requirement_files) -> Dict[str, str]:
  pins = {}
  for name in requirement_files:
    for line in (REPO / name).read_text().splitlines():
      m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)", line.strip())
      if m:
        pins[m.group(1).lower()] = m.group(3)
  return pins


def test_the_pages_have_commands():
  """The collection itself works: the main job and the test command are
  found, and every placeholder of the table is still used."""
  texts = [c.text for c in ALL_COMMANDS]
  assert any("python launch.py --config configs/av_digits.py --workdir "
             "runs/av_digits" in t for t in texts)
  assert any("python -m pytest" in t for t in texts)
  assert len(ALL_COMMANDS) > 30
  used = set()
  for c in ALL_COMMANDS:
    used |= substitute(c.text, "/w", "/m")[1]
  assert used == set(PLACEHOLDERS), set(PLACEHOLDERS) - used


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_command(command, launched):
  plan, parses = launched[str(command)]
  if not isinstance(plan, Plan):
    raise AssertionError(f"{command}: {plan}")
  for path in plan.paths:
    assert (REPO / path).exists(), f"{command}: no {path} in the repository"
  for argv, result in zip(plan.launches, parses):
    assert result["error"] is None, (
        f"{command}: launch.py {' '.join(argv)}\n{result['error']}")
    for a in argv:
      if a.startswith("--config.") and "=" in a:
        key, value = a[len("--config."):].split("=", 1)
        assert result["overrides"][key] == _expected(value), (command, key)
    if "manifest.py" in " ".join(argv):
      assert result["manifest"] and result["manifest"].endswith(
          (".csv", ".jsonl")), command
  for script, args in plan.scripts:
    flags = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    for flag in flags:
      assert flag[2:] in script_flags(script), (
          f"{command}: {script} --help lists no {flag}")
    if script.endswith("run_sweep.py"):
      proc = subprocess.run([sys.executable, script, *args, "--list"],
                            cwd=REPO, capture_output=True, text=True,
                            timeout=120)
      assert proc.returncode == 0 and "launch.py" in proc.stdout, (
          command, proc.stderr[-2000:])
  for name in plan.requirement_files:
    assert (REPO / name).is_file(), f"{command}: no {name}"
  pins = _pins(plan.requirement_files or ["requirements.txt"])
  for spec in plan.pins:
    m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)$", spec)
    assert m, f"{command}: unpinned {spec}"
    assert pins.get(m.group(1).lower()) == m.group(3), (
        f"{command}: {spec} against the pin {pins.get(m.group(1).lower())}")
  if plan.extras:
    with open(REPO / "pyproject.toml", "rb") as f:
      dynamic = tomllib.load(f)["tool"]["setuptools"]["dynamic"]
    for extra in plan.extras:
      assert extra in dynamic["optional-dependencies"], (command, extra)
  if plan.pytest is not None and "-m" in plan.pytest[2:]:
    # A marked subset (`-m gpu`, the tests CI cannot run): a registered
    # marker, whose tests the suite's command skips.
    marker = plan.pytest[plan.pytest.index("-m", 2) + 1]
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())[
        "tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith(f"{marker}:") for m in markers), command
  elif plan.pytest is not None:
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ["python", *plan.pytest] == shlex.split(ci), command


def test_manifest_commands_build_the_manifests_modalities(launched):
  """The manifest config reads the built manifest: its four modality
  columns, and the video alone without soundtracks."""
  seen = {}
  for plan, parses in launched.values():
    if not isinstance(plan, Plan):
      continue
    for argv, result in zip(plan.launches, parses):
      if result.get("manifest"):
        seen[pathlib.Path(result["manifest"]).name] = result["modalities"]
  assert seen == {"data.csv": ["image", "audio", "text", "video"],
                  "clips.csv": ["video"]}, seen


def _slug(heading: str) -> str:
  """GitHub's anchor of a heading."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
  text = _without_fences(page.read_text())
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"^[a-z]+:", target):
      continue
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{page.name}: broken link {target}"
    if anchor:
      headings = re.findall(r"^#+ (.*)$", _without_fences(file.read_text()),
                            re.M)
      assert anchor in {_slug(h) for h in headings}, (
          f"{page.name}: no heading #{anchor} in {file.name}")


REPO_PATH = re.compile(
    r"(?<![\w/.])((?:mmjax|tests|configs|scripts|benchmarks|experiments)"
    r"/[\w./-]*)")
DOTTED = re.compile(r"(?<![\w.])(mmjax(?:\.\w+)+)")


def _dotted_exists(name: str) -> bool:
  """`mmjax.a.b[.attr...]`: a module of the tree, and a first attribute
  defined or imported in it."""
  parts = name.split(".")
  for i in range(len(parts), 0, -1):
    base = REPO.joinpath(*parts[:i])
    module = base.with_suffix(".py") if not base.is_dir() else (
        base / "__init__.py")
    if module.exists():
      if i == len(parts):
        return True
      return re.search(rf"^(def|class) {parts[i]}\b|^{parts[i]}\b *[:=]|"
                       rf"\bimport .*\b{parts[i]}\b", module.read_text(),
                       re.M) is not None or (base / parts[i]).exists()
  return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_repository_paths_in_the_pages_exist(page):
  """Every file, folder and `mmjax.` module the page names is there, but
  the files it has the user create."""
  text = page.read_text()
  missing = sorted({m.rstrip(".") for m in REPO_PATH.findall(text)
                    if not (REPO / m.rstrip(".")).exists()} -
                   set(user_files([page])))
  missing += sorted({m for m in DOTTED.findall(text) if not _dotted_exists(m)})
  assert not missing, f"{page.relative_to(REPO)} names {missing}"


def test_every_docs_page_is_in_the_index():
  index = (REPO / "docs" / "README.md").read_text()
  for page in PAGES:
    if page.parent.name == "docs" and page.name != "README.md":
      assert f"]({page.name})" in index, page.name
  assert "](docs/README.md)" in (REPO / "README.md").read_text()


if __name__ == "__main__":
  print(json.dumps(parse_launch_flags(json.loads(sys.stdin.read()))))
