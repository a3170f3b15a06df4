"""Times the jitted JAX log-mel + MFCC front end against librosa in a loop.

  python benchmarks/audio_frontend.py --batch 64 --seconds 1.0 --repeats 5
"""

import argparse
from pathlib import Path
import sys
import time

import jax
import jax.numpy as jnp
import librosa
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmjax.models.layers import audio_frontend  # noqa: E402


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--seconds", type=float, default=1.0)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--sample_rate", type=int, default=8000)
  parser.add_argument("--n_fft", type=int, default=256)
  parser.add_argument("--hop_length", type=int, default=80)
  parser.add_argument("--n_mels", type=int, default=40)
  parser.add_argument("--n_mfcc", type=int, default=20)
  return parser.parse_args()


def make_jax_fn(args):
  dct = audio_frontend.dct_matrix(args.n_mels, args.n_mfcc)

  @jax.jit
  def features(waveform):
    log_spec = audio_frontend.log_mel(waveform, args.sample_rate, args.n_fft,
                                      args.hop_length, args.n_mels)
    return log_spec, jnp.matmul(log_spec, dct,
                                precision=jax.lax.Precision.HIGHEST)

  return lambda x: jax.block_until_ready(features(x))


def make_librosa_fn(args):
  def features(batch):
    out = []
    for y in batch:
      mel = librosa.feature.melspectrogram(
          y=y, sr=args.sample_rate, n_fft=args.n_fft,
          hop_length=args.hop_length, n_mels=args.n_mels)
      log_spec = librosa.power_to_db(mel)
      out.append((log_spec, librosa.feature.mfcc(S=log_spec,
                                                 n_mfcc=args.n_mfcc)))
    return out

  return features


def median_seconds(fn, x, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  args = parse_args()
  samples = int(args.seconds * args.sample_rate)
  rng = np.random.default_rng(0)
  batch = (0.1 * rng.standard_normal((args.batch, samples))).astype(np.float32)
  jax_fn, librosa_fn = make_jax_fn(args), make_librosa_fn(args)

  start = time.perf_counter()
  jax_fn(jnp.asarray(batch))
  compile_s = time.perf_counter() - start
  librosa_fn(batch)  # Warms librosa's filterbank cache.
  jax_s = median_seconds(jax_fn, jnp.asarray(batch), args.repeats)
  librosa_s = median_seconds(librosa_fn, batch, args.repeats)

  print(f"backend={jax.default_backend()} batch={args.batch} "
        f"samples={samples} repeats={args.repeats} (median)")
  print(f"jax first call (compile + run): {compile_s * 1e3:.1f} ms")
  print(f"jax jitted:    {jax_s * 1e3:.2f} ms")
  print(f"librosa loop:  {librosa_s * 1e3:.2f} ms")
  print(f"librosa / jax: {librosa_s / jax_s:.2f}x")


if __name__ == "__main__":
  main()
