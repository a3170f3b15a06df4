"""Preprocessing ops that pick one text out of an example's names in many
languages, and the CLDR locale fallback chain they use.

Registered into `mmjax.data.pp.registry.OPS` (see there for the op contract
`fn(x, seed) -> x`), which imports this module on its first lookup.

Input `x` of the ops, one example's texts, one of:
  * a dict `{"names": tf.string [n], "locales": tf.string [n], "name_en":
    tf.string []}` (`EXPECTED_KEYS`): the `text` feature of
    `emoji_image_text` (`mmjax.data.builders.emoji`), i.e. the config's
    modality `text`: `names[i]` is the name in the CLDR locale
    `locales[i]`, and `name_en` the English name;
  * a bare tf.string `[n]` tensor of texts (`random_text` only, since
    `select_text` needs the locales);
  * a scalar tf.string, one text (e.g. a class name that the zero-shot
    evaluation sends through the text modality's pp spec), which both ops
    return unchanged: there is nothing to pick.

The ops:
  * `select_text(locale="en")`: the name in `locale`; where the example has
    none, the name in the nearest CLDR ancestor of `locale` that it has
    (`locale_chain`, e.g. en_GB -> en_001 -> en), else `name_en`.
    Deterministic (the seed is unused).
  * `random_text()`: one of the `n` names, uniformly at random from the
    example's stateless seed. `mmjax.data.pipeline` gives each example a
    seed folded from (seed, process index, position): in training the pick
    changes from step to step (the position grows with each epoch), at
    evaluation (`eval_batches`, seed 0) it is a fixed, per-example choice,
    so "all languages" retrieval is reproducible (for a given process count).

Typical specs (with `tokenize` from `mmjax.data.pp.pretrained` and the
tokenizer prepared beside the dataset, see `mmjax.data.pipeline` for
`{dataset_dir}`):

    modalities = ("image", "text")
    pp_train = {"text": 'random_text|tokenize(tokenizer="{dataset_dir}/'
                        'tokenizer", max_length=16)'}
    pp_eval = {"text": 'select_text("fr")|tokenize(...)'}
"""

from typing import List, Mapping, Optional, Tuple, Union

import tensorflow as tf

from mmjax.data.pp.registry import Op
from mmjax.data.pp.registry import OPS

# CLDR's `<parentLocales>` (common/supplemental/supplementalData.xml of recent
# releases) for the locales of the emoji annotations whose parent is not the
# locale minus its last subtag. "root" ends the chain. Other locales: drop the last
# `_subtag` (fr_CA -> fr, zh_Hant_HK -> zh_Hant, sr_Cyrl_BA -> sr_Cyrl -> sr).
PARENT_LOCALES = {
    "en_AU": "en_001", "en_CA": "en_001", "en_GB": "en_001",
    "en_IN": "en_001", "es_MX": "es_419", "es_US": "es_419",
    "hi_Latn": "en_IN", "pa_Arab": "root", "sr_Latn": "root",
    "yue_Hans": "root", "zh_Hant": "root",
}

# The keys of the dict input (the `text` feature of emoji_image_text).
EXPECTED_KEYS = ("names", "locales", "name_en")

Texts = Union[tf.Tensor, Mapping[str, tf.Tensor]]


def parent_locale(locale: str) -> str:
  """CLDR's parent of `locale` ("root" for a language or a root child).

  Args:
    locale: a CLDR locale id with underscores, e.g. "en_GB", "zh_Hant_HK".

  Returns:
    e.g. "en_001" for "en_GB", "fr" for "fr_CA", "root" for "fr" and for
    "zh_Hant" (whose script differs from zh's).
  """
  if locale in PARENT_LOCALES:
    return PARENT_LOCALES[locale]
  return locale.rsplit("_", 1)[0] if "_" in locale else "root"


def locale_chain(locale: str) -> List[str]:
  """`locale` then its CLDR ancestors, without "root".

  e.g. ["en_GB", "en_001", "en"], ["zh_Hant_HK", "zh_Hant"], ["fr"].
  """
  chain = []
  while locale and locale != "root" and locale not in chain:
    chain.append(locale)
    locale = parent_locale(locale)
  return chain


def _fields(x: Texts, op: str
            ) -> Tuple[tf.Tensor, Optional[tf.Tensor], Optional[tf.Tensor]]:
  """(names [n] or one text [], locales [n] or None, name_en [] or None)
  of the op's input: the dict's fields, or `(x, None, None)`.

  Raises:
    ValueError: naming `EXPECTED_KEYS`, for a dict without them (other keys
      are ignored) or whose names / locales are not tf.string [n] or whose
      name_en is not a scalar tf.string.
  """
  if isinstance(x, Mapping):
    missing = [k for k in EXPECTED_KEYS if k not in x]
    if missing:
      raise ValueError(
          f"{op}: the input dict lacks {missing}; expected the keys "
          f"{list(EXPECTED_KEYS)} (the `text` feature of emoji_image_text: "
          f"names tf.string [n], locales tf.string [n], name_en tf.string "
          f"[]), got {sorted(x)}")
    names, locales, name_en = (tf.convert_to_tensor(x[k])
                               for k in EXPECTED_KEYS)
    for key, value, rank in (("names", names, 1), ("locales", locales, 1),
                             ("name_en", name_en, 0)):
      if value.dtype != tf.string or value.shape.rank != rank:
        raise ValueError(
            f"{op}: the input dict's {key!r} must be a tf.string of rank "
            f"{rank} (keys {list(EXPECTED_KEYS)}: names [n], locales [n], "
            f"name_en []), got {value.dtype.name} of shape {value.shape}")
    return names, locales, name_en
  return tf.convert_to_tensor(x), None, None


def _is_one_text(texts: tf.Tensor, op: str) -> bool:
  """True for a scalar tf.string; checks that it is else a tf.string [n]."""
  if texts.dtype != tf.string or texts.shape.rank not in (0, 1):
    raise ValueError(
        f"{op} expects the example's texts as a dict with the keys "
        f"{list(EXPECTED_KEYS)} (names [n], locales [n], name_en []), a "
        f"tf.string [n] or one text (a scalar tf.string); got "
        f"{texts.dtype.name} of shape {texts.shape}")
  return texts.shape.rank == 0


@OPS.register("select_text")
def select_text(locale: str = "en") -> Op:
  """Picks the example's name in `locale`, falling back along CLDR's chain.

  Args:
    locale: a CLDR locale id, e.g. "en", "fr", "ja", "en_GB", "zh_Hant".

  Returns:
    `fn(x, seed)` mapping `{"names": tf.string [n], "locales": tf.string
    [n], "name_en": tf.string []}` to a scalar tf.string: the name whose
    locale is the first of `locale_chain(locale)` that the example has,
    else `name_en`; a scalar tf.string is returned unchanged. `seed` is
    unused.

  Raises:
    ValueError: for an empty or non-string `locale`, or (when applied) an
      input that is neither such a dict nor a scalar (a bare `[n]` text
      tensor has no locales); the message names the expected keys.
  """
  if not isinstance(locale, str) or not locale:
    raise ValueError(f"select_text: locale must be a non-empty CLDR locale "
                     f"id such as 'en' or 'fr_CA', got {locale!r}")
  chain = tf.constant(locale_chain(locale))
  num = len(locale_chain(locale))

  def op(x, seed):
    del seed
    texts, locales, name_en = _fields(x, "select_text")
    if _is_one_text(texts, "select_text"):
      return texts
    if locales is None:
      raise ValueError(
          f"select_text needs the example's locales: give it a dict with "
          f"the keys {list(EXPECTED_KEYS)} (names [n], locales [n], name_en "
          f"[]; the `text` feature of emoji_image_text), not a bare "
          f"tf.string [n] of texts")
    tf.debugging.assert_equal(
        tf.size(texts), tf.size(locales),
        "select_text: the input dict's 'names' and 'locales' differ in "
        "length")
    # rank[i] = position of locales[i] in the chain, `num` if absent.
    matches = tf.equal(locales[:, None], chain[None, :])
    rank = tf.reduce_min(
        tf.where(matches, tf.range(num)[None, :], num), axis=1)
    # name_en first with rank `num`: argmin (first minimum) picks it only
    # when no text is in the chain.
    candidates = tf.concat([name_en[None], texts], axis=0)
    ranks = tf.concat([[num], rank], axis=0)
    return candidates[tf.argmin(ranks, output_type=tf.int32)]
  return op


@OPS.register("random_text")
def random_text() -> Op:
  """Picks one of the example's texts uniformly at random (stateless).

  Returns:
    `fn(x, seed)` mapping a tf.string `[n]`, or the dict `{"names":
    tf.string [n], "locales": tf.string [n], "name_en": tf.string []}`
    (whose `names` are used), to a scalar tf.string, `names[i]` with `i`
    drawn by `tf.random.stateless_uniform([], seed, 0, n)`: the same seed
    gives the same pick, and the dict and its bare `names` give the same
    pick. With the dict and `n == 0` it returns `name_en`; a bare empty
    tensor fails at run time; a scalar tf.string is returned unchanged.

  Raises:
    ValueError: (when applied) for an input that is not a tf.string `[n]`
      or `[]`, or a dict with the keys `EXPECTED_KEYS` (the message names
      them).
  """
  def op(x, seed):
    texts, _, name_en = _fields(x, "random_text")
    if _is_one_text(texts, "random_text"):
      return texts
    if name_en is not None:
      texts = tf.concat([texts, name_en[None]], axis=0)[
          :tf.maximum(tf.shape(texts)[0], 1)]
    n = tf.shape(texts)[0]
    tf.debugging.assert_positive(n, "random_text: the example has no text")
    index = tf.random.stateless_uniform([], seed, 0, n, dtype=tf.int32)
    return texts[index]
  return op

