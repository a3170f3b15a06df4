"""The av_digits early-fusion train step in PyTorch (CPU), the reference that
mmjax's `train_step.py` is measured against.

Same model as `configs/av_digits.py` without the unimodal auxiliary heads
and modality dropout of its training recipe (compare.py turns them off on
the mmjax side) (image CNN + log-mel CNN, GroupNorm,
tanh-GELU, 2x2 max-pool, masked-mean pooling, concatenation, MLP trunk with
dropout 0.2, linear head), same loss (cross-entropy), same optimizer (AdamW,
weight decay on kernels only, warmup-cosine schedule, global-norm clipping
at 1.0), same batch and thread count, float32. The log-mel front end runs
inside the step, as in mmjax: `torch.stft` (centred, zero padding, periodic
Hann window), the same Slaney mel filterbank, `10 log10` with an 80 dB floor
per example, per-example standardisation.

Two differences from the config's training recipe remain: the config
standardises each mel band over time (CMVN) where this standardises over
all bins, the same work; and the config's SpecAugment masks are not
applied here. SpecAugment on or off made no measurable difference to
mmjax's step (A/B, benchmarks/RESULTS.md, third pass), so the comparison
is not tilted by it.

The reference is written to be fast, not literal: channels-last memory
format when it helps (both layouts are timed, the faster is reported), eager
and `torch.compile` (inductor), `optimizer.step` with `foreach` kernels,
`zero_grad(set_to_none=True)`.

  pip install -r benchmarks/requirements.txt   # torch==2.13.0, CPU build
  python benchmarks/torch_reference.py --threads 2
  python benchmarks/compare.py                  # this and mmjax, one command
"""

import argparse
import json
import math
from pathlib import Path
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

SAMPLE_RATE, N_FFT, HOP, N_MELS = 8000, 256, 128, 40
FEATURES = (16, 32, 64)
EMBED_DIM, HIDDEN, NUM_CLASSES, DROPOUT = 128, 256, 10, 0.2


def mel_filterbank() -> np.ndarray:
  """The Slaney mel filterbank `[n_fft // 2 + 1, n_mels]` (librosa's)."""
  import librosa  # pylint: disable=g-import-not-at-top
  return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT,
                             n_mels=N_MELS).T.astype(np.float32)


class ConvBlock(nn.Module):
  """3x3 conv (no bias) -> GroupNorm -> tanh-GELU -> 2x2 max-pool."""

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    self.norm = nn.GroupNorm(min(8, cout), cout, eps=1e-6)

  def forward(self, x):
    x = F.gelu(self.norm(self.conv(x)), approximate="tanh")
    return F.max_pool2d(x, 2)


class CNN(nn.Module):
  """Conv blocks, then a Dense per spatial position -> tokens."""

  def __init__(self, fold_freq: bool, tokens_in: int):
    super().__init__()
    widths = (1,) + FEATURES
    self.blocks = nn.Sequential(
        *[ConvBlock(a, b) for a, b in zip(widths[:-1], widths[1:])])
    self.fold_freq = fold_freq
    self.proj = nn.Linear(tokens_in, EMBED_DIM)

  def forward(self, x):
    x = self.blocks(x)  # [B, C, H, W]
    x = x.permute(0, 2, 3, 1)  # [B, H, W, C], as the JAX model
    if self.fold_freq:  # audio: one token per frame, frequency in channels
      x = x.reshape(x.shape[0], x.shape[1], -1)
    else:
      x = x.reshape(x.shape[0], -1, x.shape[-1])
    return self.proj(x)  # [B, tokens, EMBED_DIM]


class AVDigitsModel(nn.Module):
  """Log-mel front end + two CNNs, early fusion, trunk and head."""

  def __init__(self, memory_format):
    super().__init__()
    self.memory_format = memory_format
    self.register_buffer("window", torch.hann_window(N_FFT, periodic=True))
    self.register_buffer("mel", torch.from_numpy(mel_filterbank()))
    self.audio = CNN(fold_freq=True, tokens_in=(N_MELS // 8) * FEATURES[-1])
    self.image = CNN(fold_freq=False, tokens_in=FEATURES[-1])
    self.trunk = nn.Linear(2 * EMBED_DIM, HIDDEN)
    self.head = nn.Linear(HIDDEN, NUM_CLASSES)

  def log_mel(self, waveform):
    spec = torch.stft(waveform, N_FFT, HOP, window=self.window, center=True,
                      pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # [B, freq, frames]
    mel = power.transpose(1, 2) @ self.mel  # [B, frames, n_mels]
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)
    mean = db.mean(dim=(1, 2), keepdim=True)
    std = db.std(dim=(1, 2), keepdim=True, unbiased=False)
    return (db - mean) / (std + 1e-5)

  def forward(self, image, waveform):
    spec = self.log_mel(waveform)[:, None]  # [B, 1, frames, n_mels]
    image = image.permute(0, 3, 1, 2)  # NHWC input, as mmjax's pipeline
    spec = spec.contiguous(memory_format=self.memory_format)
    image = image.contiguous(memory_format=self.memory_format)
    pooled = torch.cat([self.audio(spec).mean(1), self.image(image).mean(1)],
                       dim=-1)
    x = F.dropout(pooled, DROPOUT, self.training)
    x = F.dropout(F.gelu(self.trunk(x), approximate="tanh"), DROPOUT,
                  self.training)
    return self.head(x)


def make_step(model, total_steps: int = 1200, warmup: int = 100,
              peak_lr: float = 2e-3, compile_step: bool = False):
  """One training step: forward, cross-entropy, backward, clip, AdamW."""
  decay = [p for p in model.parameters() if p.ndim > 1]
  no_decay = [p for p in model.parameters() if p.ndim <= 1]
  optimizer = torch.optim.AdamW(
      [{"params": decay, "weight_decay": 1e-4},
       {"params": no_decay, "weight_decay": 0.0}],
      lr=peak_lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)

  def lr_at(step):
    if step < warmup:
      return peak_lr * step / warmup
    progress = (step - warmup) / (total_steps - warmup)
    return peak_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

  def loss_fn(image, audio, label):
    return F.cross_entropy(model(image, audio), label)

  if compile_step:
    loss_fn = torch.compile(loss_fn)
  state = {"step": 0}

  def step(image, audio, label):
    for group in optimizer.param_groups:
      group["lr"] = lr_at(state["step"])
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(image, audio, label)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
    optimizer.step()
    state["step"] += 1
    return loss
  return step


def run(batch: int, threads: int, steps: int, repeats: int,
        modes) -> dict:
  """Times each mode; returns `{mode: figures}` (examples/s per repeat)."""
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  rng = np.random.default_rng(0)
  image = torch.from_numpy(rng.random((batch, 28, 28, 1), np.float32))
  audio = torch.from_numpy(
      rng.uniform(-1, 1, (batch, SAMPLE_RATE)).astype(np.float32))
  label = torch.from_numpy(rng.integers(0, NUM_CLASSES, batch))
  results = {}
  for mode in modes:
    compiled, layout = mode.split("/")
    fmt = (torch.channels_last if layout == "channels_last"
           else torch.contiguous_format)
    model = AVDigitsModel(fmt).train()
    step = make_step(model, compile_step=compiled == "compile")
    t0 = time.perf_counter()
    step(image, audio, label)
    first = time.perf_counter() - t0

    def one_run():
      for _ in range(steps):
        step(image, audio, label)
    seconds = timing.measure(one_run, warmup=2, repeats=repeats)
    results[mode] = timing.summary(
        [steps * batch / s for s in seconds], unit="examples/s")
    results[mode]["first_step_seconds"] = round(first, 2)
    results[mode]["num_params"] = sum(p.numel() for p in model.parameters())
    print(f"torch {mode}: {timing.format_summary(results[mode])}", flush=True)
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64, help="global batch")
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--steps", type=int, default=10, help="steps per run")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument(
      "--modes", default="eager/contiguous,eager/channels_last,"
      "compile/contiguous,compile/channels_last")
  args = parser.parse_args()
  results = run(args.batch, args.threads, args.steps, args.repeats,
                args.modes.split(","))
  best = max(results, key=lambda m: results[m]["median"])
  print(json.dumps({"benchmark": "torch_reference", "torch": torch.__version__,
                    "threads": args.threads, "batch": args.batch,
                    "best_mode": best,
                    "best_examples_per_second": results[best]["median"],
                    "modes": results}))


if __name__ == "__main__":
  main()
