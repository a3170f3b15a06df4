"""Tiny Hugging Face tokenizers built offline for the tests: a WordPiece
vocabulary wrapped as `transformers.BertTokenizerFast` and a byte-level BPE
wrapped as `transformers.CLIPTokenizerFast`, both trained with the
`tokenizers` library on `CORPUS` and saved with `save_pretrained`."""

import json
import pathlib

import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, trainers
import transformers

# Emoji with CLDR names in a few languages, accents, CJK, right-to-left
# scripts, a skin-tone modifier and a zero-width-joiner family sequence.
CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "grinning face 😀 thumbs up 👍 party popper 🎉",
    "visage souriant aux grands yeux 😃 café crème brûlée, naïve façade",
    "grinsendes Gesicht mit großen Augen, Straße, Ärger",
    "にっこり笑う顔 😀 日本語のテキストです。",
    "咧嘴笑的脸 中文字符 和 汉字",
    "ухмыляющееся лицо",
    "وجه مبتسم",
    "दाँत दिखाता चेहरा",
    "family 👨‍👩‍👧 waving hand 👋🏽",
)
# Shorter and longer than the tests' max_length (special tokens included),
# texts unseen in training (unknown pieces) and the empty text.
TEXTS = CORPUS + (
    "",
    "fox",
    "A completely different sentence the vocabulary has mostly never seen",
    "😀😀😀 👍🏽👍🏽 日本 café Ñandú ẞ ﬁ",
    " ".join(CORPUS),
)


def build_bert_tokenizer(directory: pathlib.Path, vocab_size: int = 160):
  """Trains a lowercasing WordPiece vocabulary on `CORPUS`, saves it as a
  `BertTokenizerFast` in `directory` and returns the tokenizer."""
  tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(
      vocab_size=vocab_size, show_progress=False,
      special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
  hf = transformers.BertTokenizerFast(vocab=tok.get_vocab())
  hf.save_pretrained(str(directory))
  return hf


def build_clip_tokenizer(directory: pathlib.Path, vocab_size: int = 600):
  """Trains a byte-level BPE with CLIP's normaliser, pre-tokenizer and
  end-of-word suffix on `CORPUS`, saves it as a `CLIPTokenizerFast` in
  `directory` and returns the tokenizer. Like OpenAI's vocabulary, it starts
  with the 256 byte symbols and the same with `</w>`."""
  tok = tokenizers.Tokenizer(models.BPE(end_of_word_suffix="</w>",
                                        continuing_subword_prefix=""))
  tok.normalizer = normalizers.Sequence([
      normalizers.NFC(),
      normalizers.Replace(tokenizers.Regex(r"\s+"), " "),
      normalizers.Lowercase()])
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(tokenizers.Regex(
          r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                           behavior="removed", invert=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False)])
  alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
      vocab_size=vocab_size, initial_alphabet=alphabet,
      end_of_word_suffix="</w>", show_progress=False))
  model = json.loads(tok.to_str())["model"]
  vocab = {}
  for token in (alphabet + [c + "</w>" for c in alphabet] + list(model["vocab"])
                + ["<|startoftext|>", "<|endoftext|>"]):
    vocab.setdefault(token, len(vocab))
  merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
            for m in model["merges"]]
  hf = transformers.CLIPTokenizerFast(vocab=vocab, merges=merges)
  hf.save_pretrained(str(directory))
  return hf
