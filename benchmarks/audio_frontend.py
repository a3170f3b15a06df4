"""The JAX log-mel and MFCC front end against librosa's batched call, on real
FSDD recordings.

A batch of `--batch` FSDD clips (the first ones in sorted file order,
centre-cropped or zero-padded to 1 s at 8 kHz), the av_digits front end
settings (configs/av_digits.py AUDIO_FRONTEND; `--n_mfcc` coefficients).
JAX: one jitted call computing log-mel and MFCC, on one device and with the
batch sharded over all devices (on a CPU, the devices
`mmjax.parallel.configure_cpu_devices` exposes, as `launch.py` does;
`--devices` overrides). librosa: one batched
`melspectrogram` on the `[batch, samples]` array, `power_to_db` with the
80 dB floor taken per clip (as the JAX front end does), batched `mfcc`.
Prints clips/s (median, min, max over `--repeats` runs of `--calls` calls
after warm-up), the
ratio, the maximum absolute difference of the log-mel (dB) and MFCC, and
one JSON line.

  python benchmarks/audio_frontend.py --write_results
"""

import argparse
import json
from pathlib import Path
import sys

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from configs.av_digits import AUDIO_FRONTEND  # noqa: E402
from mmjax import parallel  # noqa: E402
from mmjax.models.layers import audio_frontend  # noqa: E402
import timing  # noqa: E402

FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"


def load_clips(n: int, samples: int) -> np.ndarray:
  """`[n, samples]` float32: the first n FSDD recordings, centre-cropped or
  zero-padded (centred) to `samples`.

  Raises:
    SystemExit: naming the folder when the recordings are missing.
  """
  files = sorted(FSDD.glob("*.wav"))[:n]
  if len(files) < n:
    raise SystemExit(f"need {n} FSDD recordings in {FSDD}, found "
                     f"{len(files)} (see ../shared/data/README.md)")
  out = np.zeros((n, samples), np.float32)
  for i, f in enumerate(files):
    y, _ = sf.read(f, dtype="float32")
    if len(y) >= samples:
      start = (len(y) - samples) // 2
      out[i] = y[start:start + samples]
    else:
      start = (samples - len(y)) // 2
      out[i, start:start + len(y)] = y
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--n_mfcc", type=int, default=20)
  parser.add_argument("--calls", type=int, default=10,
                      help="calls per timed run (one call is ~20 ms)")
  parser.add_argument("--devices", type=int, default=None,
                      help="CPU devices; default: as launch.py picks them")
  parser.add_argument("--write_results", action="store_true")
  args = parser.parse_args()
  parallel.configure_cpu_devices(args.devices, (args.batch,))
  p = {k: AUDIO_FRONTEND[k] for k in ("sample_rate", "n_fft", "hop_length",
                                      "n_mels")}
  clips = load_clips(args.batch, p["sample_rate"])
  dct = audio_frontend.dct_matrix(p["n_mels"], args.n_mfcc)

  @jax.jit
  def jax_features(waveform):
    log_spec = audio_frontend.log_mel(waveform, **p)
    return log_spec, jnp.matmul(log_spec, dct,
                                precision=jax.lax.Precision.HIGHEST)

  def librosa_features(waveform):
    mel = librosa.feature.melspectrogram(
        y=waveform, sr=p["sample_rate"], n_fft=p["n_fft"],
        hop_length=p["hop_length"], n_mels=p["n_mels"])
    log_spec = librosa.power_to_db(mel, top_db=None)
    log_spec = np.maximum(log_spec,
                          log_spec.max(axis=(1, 2), keepdims=True) - 80.0)
    return log_spec, librosa.feature.mfcc(S=log_spec, n_mfcc=args.n_mfcc)

  def repeated(fn):
    def run():
      for _ in range(args.calls):
        out = fn()
      return out
    return run

  librosa_s = timing.measure(repeated(lambda: librosa_features(clips)), 1,
                             args.repeats)
  ref_log_mel, ref_mfcc = librosa_features(clips)
  mesh = parallel.make_mesh()
  placements = {"1 device": jax.device_put(clips, jax.devices()[0]),
                f"{mesh.size} devices, batch sharded":
                    parallel.to_global(clips, mesh)}
  jax_rates, diffs = {}, {}
  for name, device_clips in placements.items():
    jax_s = timing.measure(repeated(
        lambda: jax.block_until_ready(jax_features(device_clips))), 1,
        args.repeats)
    jax_rates[name] = timing.summary(
        [args.calls * args.batch / s for s in jax_s], "clips/s")
    log_mel, mfcc = (np.asarray(a) for a in jax_features(device_clips))
    diffs[name] = (
        float(np.abs(log_mel - ref_log_mel.transpose(0, 2, 1)).max()),
        float(np.abs(mfcc - ref_mfcc.transpose(0, 2, 1)).max()))
  librosa_rate = timing.summary(
      [args.calls * args.batch / s for s in librosa_s], "clips/s")
  best = max(jax_rates, key=lambda k: jax_rates[k]["median"])
  jax_rate = jax_rates[best]
  log_mel_diff = max(d[0] for d in diffs.values())
  mfcc_diff = max(d[1] for d in diffs.values())
  ratio = jax_rate["median"] / librosa_rate["median"]
  print(f"{args.batch} FSDD clips of 1 s, {p}, n_mfcc={args.n_mfcc}, "
        f"{jax.default_backend()}:")
  for name, rate in jax_rates.items():
    print(f"  JAX (jit), {name}: {timing.format_summary(rate)}")
  print(f"  librosa (batched): {timing.format_summary(librosa_rate)}")
  print(f"  JAX ({best}) / librosa: {ratio:.1f}x; max |diff| log-mel {log_mel_diff:.2e}"
        f" dB, MFCC {mfcc_diff:.2e}")
  print(json.dumps({"benchmark": "audio_frontend", "batch": args.batch,
                    "jax": jax_rate, "jax_by_placement": jax_rates,
                    "jax_placement": best, "librosa": librosa_rate,
                    "ratio": round(ratio, 2),
                    "max_abs_diff_log_mel_db": log_mel_diff,
                    "max_abs_diff_mfcc": mfcc_diff,
                    "platform": jax.default_backend()}))
  if args.write_results:
    timing.write_section("audio_frontend", "\n".join([
        "## Audio front end: JAX log-mel + MFCC vs librosa",
        "",
        f"`python benchmarks/audio_frontend.py --write_results` on "
        f"{timing.machine()}, jax {jax.__version__} ({jax.default_backend()})"
        f", librosa {librosa.__version__}: {args.batch} real FSDD clips of "
        f"1 s, {p}, n_mfcc={args.n_mfcc}; clips/s over {args.repeats} runs "
        f"of {args.calls} calls after warm-up.",
        "",
        "| implementation | median clips/s | min | max |",
        "|---|---|---|---|",
        *(f"| JAX, jitted, {name} | {r['median']:g} | {r['min']:g} | "
          f"{r['max']:g} |" for name, r in jax_rates.items()),
        f"| librosa, batched call | {librosa_rate['median']:g} | "
        f"{librosa_rate['min']:g} | {librosa_rate['max']:g} |",
        "",
        f"JAX ({best}) / librosa: **{ratio:.1f}x**. Maximum absolute "
        f"difference (either placement): "
        f"log-mel {log_mel_diff:.2e} dB, MFCC {mfcc_diff:.2e}.",
    ]))


if __name__ == "__main__":
  main()
