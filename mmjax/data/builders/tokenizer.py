"""The byte-level BPE tokenizer that mmjax trains on a dataset's own texts
while preparing it (`emoji_image_text`, `multimodal_manifest`), saved beside
the dataset for the `tokenize` pp op."""

from typing import Sequence

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")


def train_tokenizer(texts: Sequence[str], vocab_size: int = 8000):
  """A byte-level BPE tokenizer trained on `texts`, as a Hugging Face one.

  `tokenizers` BPE on bytes (GPT-2's byte-to-unicode alphabet, all 256 bytes
  in the initial alphabet, so every script and emoji is covered without an
  unknown token), NFC normalisation, GPT-2's pre-tokenizer regex without an
  added prefix space, and a post-processor that wraps a text as `<bos> ...
  <eos>` (ids 1 and 2; `<pad>` is 0). `decode(encode(x),
  skip_special_tokens=True) == NFC(x)`. Training is deterministic: the same
  texts (in any order) and vocabulary size give the same tokenizer.

  Args:
    texts: the training texts; each distinct text counts once (a repeated
      name, e.g. a skin-tone variant's, does not weigh more).
    vocab_size: the vocabulary size, special tokens and the 256 byte
      symbols included (at most; a small corpus may give fewer); >= 259.

  Returns:
    A `transformers.PreTrainedTokenizerFast` with pad, bos and eos tokens.

  Raises:
    ValueError: for `vocab_size` < 259 or no text.
  """
  import tokenizers  # pylint: disable=g-import-not-at-top
  from tokenizers import decoders, models, normalizers  # pylint: disable=g-import-not-at-top
  from tokenizers import pre_tokenizers, processors, trainers  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  if vocab_size < len(alphabet) + len(SPECIAL_TOKENS):
    raise ValueError(f"vocab_size must be >= "
                     f"{len(alphabet) + len(SPECIAL_TOKENS)} (the byte "
                     f"alphabet and {SPECIAL_TOKENS}), got {vocab_size}")
  if not texts:
    raise ValueError("train_tokenizer: no text to train on")
  tok = tokenizers.Tokenizer(models.BPE())
  tok.normalizer = normalizers.NFC()
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(sorted(set(texts)), trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
      initial_alphabet=sorted(alphabet), show_progress=False))
  pad, bos, eos = SPECIAL_TOKENS
  tok.post_processor = processors.TemplateProcessing(
      single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}",
      special_tokens=[(bos, tok.token_to_id(bos)),
                      (eos, tok.token_to_id(eos))])
  return transformers.PreTrainedTokenizerFast(
      tokenizer_object=tok, pad_token=pad, bos_token=bos, eos_token=eos)
