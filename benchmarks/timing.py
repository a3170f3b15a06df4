"""Shared by the benchmarks: repeated timing, summaries, the machine, and the
sections of benchmarks/RESULTS.md."""

import os
import platform
import re
import resource
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def measure(fn: Callable[[], object], warmup: int, repeats: int) -> List[float]:
  """Calls `fn` `warmup` times untimed, then `repeats` times; seconds each.

  `fn` must block until its work is done (e.g. `jax.block_until_ready`).
  """
  for _ in range(warmup):
    fn()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    seconds.append(time.perf_counter() - start)
  return seconds


def summary(values: Sequence[float], unit: str) -> Dict[str, object]:
  """Median, min and max of `values` (rounded to 4 significant digits)."""
  ordered = sorted(values)
  n = len(ordered)
  median = (ordered[n // 2] if n % 2 else
            0.5 * (ordered[n // 2 - 1] + ordered[n // 2]))
  r = lambda v: float(f"{v:.4g}")
  return {"median": r(median), "min": r(ordered[0]), "max": r(ordered[-1]),
          "runs": n, "unit": unit}


def format_summary(s: Dict[str, object]) -> str:
  return (f"median {s['median']:g} {s['unit']} (min {s['min']:g}, max "
          f"{s['max']:g}, {s['runs']} runs)")


def peak_host_memory_mib() -> float:
  """Peak resident memory of this process so far (MiB, Linux ru_maxrss)."""
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine() -> str:
  """One line: CPU model, logical cores, Python."""
  cpu = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return (f"{cpu}, {os.cpu_count()} logical cores, Python "
          f"{platform.python_version()}")


def write_section(name: str, markdown: str) -> None:
  """Replaces (or appends) the section `name` of benchmarks/RESULTS.md,
  delimited by `<!-- name -->` and `<!-- /name -->`; other sections stay."""
  text = RESULTS_MD.read_text() if RESULTS_MD.exists() else (
      "# Benchmarks\n\nEach section is rewritten by the script that names it."
      "\n")
  block = f"<!-- {name} -->\n{markdown.strip()}\n<!-- /{name} -->"
  pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->",
                       re.S)
  if pattern.search(text):
    text = pattern.sub(lambda _: block, text)
  else:
    text = text.rstrip() + "\n\n" + block + "\n"
  RESULTS_MD.write_text(text)
