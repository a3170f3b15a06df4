"""Shared pieces of the experiment configs: the config-file argument and the
training recipe every experiment starts from.

A config file's `get_config(arg)` receives what follows `:` in
`--config=configs/<file>.py:<arg>`, e.g. `fusion=cross_attention,image=vit`.
The named encoders and fusion block are built from their registered defaults
(`mmjax.models.registries.module_config`), so each of their attributes is a
config key that can be overridden on the command line
(`--config.model.fusion.num_heads=8`) while unknown keys remain errors.
"""

from typing import Dict, Optional

import ml_collections

from mmjax import sharding


def parse_arg(arg: Optional[str], **defaults: str) -> Dict[str, str]:
  """Parses `key=value,key=value` (a bare `value` sets the first key).

  Args:
    arg: the config-file argument, or None / "" for the defaults.
    **defaults: the allowed keys and their default values, in order.

  Returns:
    `{key: value}` for every allowed key.

  Raises:
    ValueError: naming an unknown key and the allowed ones.
  """
  values = dict(defaults)
  for i, item in enumerate(filter(None, (arg or "").split(","))):
    key, sep, value = item.partition("=")
    if not sep:
      if i:
        raise ValueError(f"config argument {arg!r}: {item!r} is not key=value")
      key, value = next(iter(defaults)), item
    key, value = key.strip(), value.strip()
    if key not in defaults:
      raise ValueError(f"config argument {arg!r}: unknown key {key!r}; "
                       f"allowed keys: {sorted(defaults)}")
    values[key] = value
  return values


def training_recipe(c: ml_collections.ConfigDict) -> None:
  """Adds the objective, optimizer, schedule, batch and logging keys shared
  by every experiment (classification, AdamW, warmup + cosine, global batch
  size 64). Call it after `c.model` is set: it adds `c.model.embed_dim`."""
  c.seed = 0
  objective(c)
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"
  c.optimizer.learning_rate = 2e-3
  c.optimizer.weight_decay = 1e-4
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.momentum = 0.9  # sgd only
  c.optimizer.schedule = "warmup_cosine"
  c.optimizer.warmup_steps = 100
  c.optimizer.end_learning_rate_factor = 0.01
  c.optimizer.grad_clip_norm = 1.0
  c.label_smoothing = 0.0
  # Train only the classifier heads (every encoder and the fusion block
  # frozen); per-encoder freezing and learning-rate factors are keys of each
  # encoder config (`freeze`, `learning_rate_scale`, `init_from`).
  c.linear_probe = False
  # Activation / matmul dtype of the steps: "float32", or "bfloat16" on
  # accelerators (parameters and optimizer state stay float32). "float16"
  # is refused: it would need loss scaling (mmjax.train.steps.check_train_dtype).
  c.dtype = "float32"

  # Replicated parameters (data parallelism); `sharding.fsdp > 1` shards
  # them and the optimizer state over a second mesh axis (mmjax.sharding).
  c.sharding = sharding.sharding_config()

  c.batch_size = 64  # global batch size, over all devices and hosts
  # Gradient accumulation: each step's global batch is split into this many
  # micro-batches (a lax.scan in the step, one micro-batch's activations in
  # memory), one optimizer update per step: batch_size, num_train_steps and
  # the schedule keep their meaning. batch_size must be divisible by it
  # times the device count; classification only (mmjax.train.steps).
  c.grad_accum_steps = 1
  # Training input (mmjax.data.pipeline.train_batches): shuffle_buffer_size
  # 0 caches the whole split in host memory and shuffles all of it (small
  # datasets); > 0 streams: files in a new order each epoch, cycle_length of
  # them read at once, through a shuffle buffer of that many examples, and
  # the input's position saved with each checkpoint (constant-time resume).
  c.input = ml_collections.ConfigDict({"shuffle_buffer_size": 0,
                                       "cycle_length": 16})
  c.eval_batch_size = 200
  # Evaluation input (mmjax.data.pipeline.eval_batches): a split whose
  # preprocessed, padded batches take at most this many bytes per process
  # (examples x bytes per preprocessed example) is cached in host memory
  # after its first evaluation; a larger one streams, read and preprocessed
  # again at every evaluation (every eval_every_steps). 0: always stream.
  # Same metrics either way. Default 4 GiB per split.
  c.eval_cache_max_bytes = 4 * 2**30
  c.eval_splits = ("train", "validation", "test")  # evaluated at the end
  c.num_train_steps = 1200
  c.log_every_steps = 50
  c.eval_every_steps = 400
  c.checkpoint_every_steps = 400
  c.keep_checkpoints = 2


def objective(c: ml_collections.ConfigDict) -> None:
  """Adds `c.objective` (`mmjax.objectives`: "classification", or
  "contrastive" for a CLIP-style dual encoder over the two modalities of
  `c.modalities`) and the keys of the contrastive objective, unused by
  classification: `c.model.embed_dim` (the shared embedding width, when
  `c.model` exists) and `c.zero_shot`: `template`, the text of a class for
  zero-shot classification ("{}" formatted with its name, e.g. "a photo of
  a {}."), and `pp`, the pp spec of those texts ("" = the text modality's
  `c.pp_eval` spec; set it when that spec does not start from one string,
  e.g. after a `select_text` op)."""
  c.objective = "classification"
  if "model" in c:
    c.model.embed_dim = 128
  c.zero_shot = ml_collections.ConfigDict({"template": "{}", "pp": ""})


def modality_balancing(c: ml_collections.ConfigDict) -> None:
  """Adds the keys of the training against modality laziness
  (`mmjax.train.balancing`), all off: per-modality dropout probabilities for
  `c.modalities`, the weight of the unimodal auxiliary losses (> 0 adds a
  classifier head per modality), and gradient modulation (OGM-GE); and
  those of `corrupted_modality_training`."""
  c.modality_dropout = ml_collections.ConfigDict(
      {m: 0.0 for m in c.modalities})
  c.aux_loss_weight = 0.0
  c.gradient_modulation = ml_collections.ConfigDict({
      "name": "none",  # or "ogm_ge" (needs aux_loss_weight > 0)
      "alpha": 0.5,  # strength: k = 1 - tanh(alpha * relu(ratio - 1))
      "noise": True,  # GE: Gaussian noise of the gradient's std
      "end_step": -1,  # modulate while step < end_step; -1: every step
  })
  corrupted_modality_training(c)


def corrupted_modality_training(c: ml_collections.ConfigDict) -> None:
  """Adds the keys of the training for a corrupted modality
  (`mmjax.train.corruption_training`), off: the fraction of examples with
  one modality corrupted and the corruption families a recipe may train
  with (names in `mmjax.analysis.corruptions.CORRUPTIONS`; every other
  family is held out, for evaluation only: `--mode=robustness` reports the
  two groups apart), and the reliability heads' loss weight (> 0 adds a
  learned per-example "drop this modality" decision), target ("corruption":
  clean vs corrupted; "true_class_probability": whether the modality alone
  gets the example right) and threshold (the predicted reliability below
  which a modality is dropped)."""
  c.corruption_augmentation = ml_collections.ConfigDict(
      {"probability": 0.0, "families": ()})
  c.reliability = ml_collections.ConfigDict(
      {"loss_weight": 0.0, "target": "corruption", "threshold": 0.5})


def text_encoder_sizes(vocab_size: int, max_length: int) -> dict:
  """`{text encoder: config overrides}`: the text encoders' sizes over a
  tokenizer of `vocab_size` ids and texts of at most `max_length` tokens
  (128-wide embeddings; 2-layer Transformer)."""
  return {
      "bag_of_embeddings": {"vocab_size": vocab_size, "embed_dim": 128,
                            "max_length": max_length},
      "gru": {"vocab_size": vocab_size, "embed_dim": 128, "hidden_dim": 64},
      "lstm": {"vocab_size": vocab_size, "embed_dim": 128, "hidden_dim": 64},
      "text_transformer": {"vocab_size": vocab_size, "hidden_dim": 128,
                           "num_layers": 2, "num_heads": 4, "mlp_dim": 256,
                           "max_length": max_length},
  }
