"""Parity spec of the "whisper" family: the encoder of a tiny random
`transformers.WhisperModel` against the `whisper_encoder` fed the same
log-mel features (`input_features=True`). See test_parity.py; the waveform
path (features computed inside the encoder) is tested against
`WhisperFeatureExtractor` in tests/models/encoders/test_whisper.py."""

import numpy as np

ENCODER = "whisper_encoder"
OUTPUTS = {"last_hidden_state": {"input_features": True}}
N_MELS = 80
MAX_SOURCE_POSITIONS = 16  # Whisper takes exactly 2 * 16 = 32 frames
# encoder_ffn_dim == d_model: the parity test's kernel transposition needs a
# square Dense kernel. init_std 0.2 (not 0.02): with tiny weights the
# attention is almost uniform and swapping queries and keys changed the
# output by only 2e-4. The decoder is there (WhisperModel has one) but is
# never run; its token ids must fit its tiny vocabulary.
TINY = dict(d_model=32, encoder_layers=2, encoder_attention_heads=4,
            encoder_ffn_dim=32, decoder_layers=1, decoder_attention_heads=4,
            decoder_ffn_dim=32, num_mel_bins=N_MELS,
            max_source_positions=MAX_SOURCE_POSITIONS, max_target_positions=8,
            vocab_size=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            decoder_start_token_id=1, suppress_tokens=[],
            begin_suppress_tokens=[], init_std=0.2)


def perturb(model, torch, scale=0.1):
  """Moves every 1-D parameter (LayerNorm weights and biases, every bias)
  off its init, and the stored sinusoidal positions too, so a forgotten or
  swapped one shows."""
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 1 or name.endswith("embed_positions.weight"):
        p.add_(scale * torch.randn_like(p))


def build(directory, **overrides):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config = transformers.WhisperConfig(**{**TINY, **overrides})
  model = transformers.WhisperModel(config)
  perturb(model, torch)
  model.save_pretrained(directory)


def mmjax_inputs(frames=2 * MAX_SOURCE_POSITIONS):
  """Two different feature maps, float32 `[2, frames, n_mels]`, in the
  range of Whisper's normalised log-mel (about [-1, 2])."""
  return np.random.default_rng(0).uniform(
      -1.0, 1.5, size=(2, frames, N_MELS)).astype(np.float32)


def reference(directory):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.WhisperModel.from_pretrained(directory).eval()
  features = torch.from_numpy(mmjax_inputs().transpose(0, 2, 1).copy())
  with torch.no_grad():
    out = model.encoder(input_features=features)
  return {"last_hidden_state": out.last_hidden_state.numpy()}


def select(output, tokens, mask):
  assert output == "last_hidden_state" and mask.all()
  return tokens
