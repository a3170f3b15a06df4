"""configs/clip_b16.py's train step in PyTorch, the GPU reference that
`train_step.py --config configs/clip_b16.py --synthetic` is compared with
(same machine, same hour: the issue's target is mmjax >= 1.0x its
examples/s).

Same model and sizes as the config (`--size full`: ViT-B/16 on 224 x 224,
12 layers, 768 wide, 12 heads, MLP 3072, pre-LN with an extra LayerNorm
before the layers, no patch bias, quick GELU, mean-pooled tokens, no CLS;
text: 12 layers, 512 wide, 8 heads, MLP 2048, causal, context 77, 49,408
tokens, mean over its tokens; projections to 512 without bias; a learned
logit scale capped at 100), same loss (symmetric InfoNCE over the batch),
same optimizer (AdamW, beta2 0.98, weight decay 0.2 on matrices only,
global-norm clipping at 1.0). Written to be fast: bf16 autocast on CUDA
(parameters and optimizer state float32, as mmjax's `dtype=bfloat16`),
`F.scaled_dot_product_attention` (flash / cuDNN / memory-efficient
kernels), fused QKV, `torch.compile` of the loss, fused AdamW on CUDA.

  pip install -r benchmarks/requirements.txt   # a CUDA build on a GPU host
  python benchmarks/torch_clip_b16.py --batch 256            # on a GPU
  python benchmarks/torch_clip_b16.py --size tiny --device cpu --batch 4 \\
      --steps 1 --repeats 1 --no-compile                     # a CPU check
"""

import argparse
import json
import math
from pathlib import Path
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

# {size: (image side, patch, image width, layers, heads, mlp; text width,
# layers, heads, mlp, vocab; embed_dim)}, as configs/clip_b16.py's SIZES.
SIZES = {"full": (224, 16, 768, 12, 12, 3072, 512, 12, 8, 2048, 49408, 512),
         "tiny": (32, 8, 32, 1, 2, 64, 32, 1, 2, 64, 8000, 32)}
CONTEXT = 77
EPS = 1e-5


class QuickGELU(nn.Module):
  def forward(self, x):
    return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
  """Pre-LN Transformer layer with SDPA attention."""

  def __init__(self, width, heads, mlp, causal):
    super().__init__()
    self.heads, self.causal = heads, causal
    self.norm1 = nn.LayerNorm(width, eps=EPS)
    self.qkv = nn.Linear(width, 3 * width)
    self.out = nn.Linear(width, width)
    self.norm2 = nn.LayerNorm(width, eps=EPS)
    self.mlp = nn.Sequential(nn.Linear(width, mlp), QuickGELU(),
                             nn.Linear(mlp, width))

  def forward(self, x):
    b, t, d = x.shape
    q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads,
                                           d // self.heads).unbind(2)
    y = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
        is_causal=self.causal)
    x = x + self.out(y.transpose(1, 2).reshape(b, t, d))
    return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
  def __init__(self, side, patch, width, layers, heads, mlp):
    super().__init__()
    self.patch = nn.Conv2d(3, width, patch, patch, bias=False)
    self.position = nn.Parameter(
        0.02 * torch.randn(1, (side // patch) ** 2, width))
    self.pre_norm = nn.LayerNorm(width, eps=EPS)
    self.blocks = nn.Sequential(
        *[Block(width, heads, mlp, False) for _ in range(layers)])
    self.final_norm = nn.LayerNorm(width, eps=EPS)

  def forward(self, image):  # [B, H, W, 3], as mmjax's pipeline
    x = self.patch(image.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
    x = self.blocks(self.pre_norm(x + self.position))
    return self.final_norm(x).mean(1)


class TextTransformer(nn.Module):
  def __init__(self, width, layers, heads, mlp, vocab):
    super().__init__()
    self.token = nn.Embedding(vocab, width)
    self.position = nn.Parameter(0.02 * torch.randn(1, CONTEXT, width))
    self.blocks = nn.Sequential(
        *[Block(width, heads, mlp, True) for _ in range(layers)])
    self.final_norm = nn.LayerNorm(width, eps=EPS)

  def forward(self, ids):  # [B, 77], every token real (synthetic batches)
    x = self.blocks(self.token(ids) + self.position)
    return self.final_norm(x).mean(1)


class CLIP(nn.Module):
  def __init__(self, size):
    super().__init__()
    (side, patch, iw, il, ih, im, tw, tl, th, tm, vocab, embed) = SIZES[size]
    self.image = ViT(side, patch, iw, il, ih, im)
    self.text = TextTransformer(tw, tl, th, tm, vocab)
    self.image_projection = nn.Linear(iw, embed, bias=False)
    self.text_projection = nn.Linear(tw, embed, bias=False)
    self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

  def forward(self, image, ids):
    a = F.normalize(self.image_projection(self.image(image)).float(), dim=-1)
    b = F.normalize(self.text_projection(self.text(ids)).float(), dim=-1)
    logits = a @ b.T * self.logit_scale.clamp(max=math.log(100.0)).exp()
    labels = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, labels)
            + F.cross_entropy(logits.T, labels)) / 2


def make_step(model, device, compile_step, total_steps=20000, warmup=2000,
              peak_lr=5e-4):
  decay = [p for p in model.parameters() if p.ndim > 1]
  no_decay = [p for p in model.parameters() if p.ndim <= 1]
  optimizer = torch.optim.AdamW(
      [{"params": decay, "weight_decay": 0.2},
       {"params": no_decay, "weight_decay": 0.0}],
      lr=peak_lr, betas=(0.9, 0.98), eps=1e-8,
      fused=device.type == "cuda", foreach=device.type != "cuda")
  autocast = device.type == "cuda"

  def loss_fn(image, ids):
    with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
      return model(image, ids)

  if compile_step:
    loss_fn = torch.compile(loss_fn)
  state = {"step": 0}

  def step(image, ids):
    s = state["step"]
    lr = (peak_lr * s / warmup if s < warmup else peak_lr * (
        0.01 + 0.99 * 0.5 * (1 + math.cos(
            math.pi * (s - warmup) / (total_steps - warmup)))))
    for group in optimizer.param_groups:
      group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(image, ids)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
    optimizer.step()
    state["step"] += 1
    return loss
  return step


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", choices=sorted(SIZES), default="full")
  parser.add_argument("--batch", type=int, default=256, help="batch")
  parser.add_argument("--device", default="cuda")
  parser.add_argument("--steps", type=int, default=10, help="steps per run")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--compile", action=argparse.BooleanOptionalAction,
                      default=True)
  args = parser.parse_args()
  device = torch.device(args.device)
  torch.manual_seed(0)
  torch.backends.cuda.matmul.allow_tf32 = True
  side, vocab = SIZES[args.size][0], SIZES[args.size][10]
  image = torch.rand(args.batch, side, side, 3, device=device)
  ids = torch.randint(1, min(vocab, 8000), (args.batch, CONTEXT),
                      device=device)
  model = CLIP(args.size).to(device).train()
  step = make_step(model, device, args.compile)
  sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
  t0 = time.perf_counter()
  loss = float(step(image, ids))
  first = time.perf_counter() - t0

  def one_run():
    for _ in range(args.steps):
      step(image, ids)
    sync()
  seconds = timing.measure(one_run, args.warmup, args.repeats)
  result = timing.summary([args.steps * args.batch / s for s in seconds],
                          "examples/s")
  print(f"torch clip_b16 ({args.size}, batch {args.batch}, {device}, "
        f"{'bf16 autocast' if device.type == 'cuda' else 'float32'}, "
        f"{'compiled' if args.compile else 'eager'}): "
        f"{timing.format_summary(result)}")
  print(json.dumps({
      "benchmark": "torch_clip_b16", "torch": torch.__version__,
      "size": args.size, "batch": args.batch, "device": str(device),
      "device_name": (torch.cuda.get_device_name() if device.type == "cuda"
                      else "cpu"),
      "compiled": args.compile, "first_step_seconds": round(first, 2),
      "first_loss": round(loss, 4),
      "num_params": sum(p.numel() for p in model.parameters()),
      "examples_per_second": result}))


if __name__ == "__main__":
  main()
