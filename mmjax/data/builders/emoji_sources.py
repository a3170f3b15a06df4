"""Reading the raw emoji files: the emoji list, their CLDR names, pictures.

The pure functions on the raw files of the manual directory (see `LAYOUT`
and ../shared/data/README.md, emoji/) that `mmjax.data.builders.emoji` (the
TFDS builder `emoji_image_text`) is prepared from; nothing here writes or
downloads anything.

Sources and how they are used:
  * `emoji/emoji-test.txt` (Unicode, UTS #51, Emoji 15.0 list without the
    14.0/15.0 emoji): the emoji, their English names (`name_en`), groups and
    subgroups (`# group:` / `# subgroup:` headers). Only `fully-qualified`
    lines are used (`parse_emoji_test`).
  * `emoji/cldr-annotations/<locale>.xml` (CLDR 41): the short name of
    `<annotation cp="..." type="tts">`, with draft status approved (no
    `draft`) or "contributed", CLDR's release threshold; "unconfirmed" and
    "provisional" names are left out. Keyword annotations (without
    `type="tts"`) are not used: each emoji has at most one name per
    locale. `cp` is the emoji without U+FE0F (`parse_annotations`,
    `load_annotations`).
  * `emoji/NotoColorEmoji.ttf` (Noto Color Emoji 2.042): the pictures,
    rendered by Pillow (raqm layout, so ZWJ sequences and flags are one
    glyph) by `Renderer`: the glyph drawn in its 136 x 128 em box (font
    size 109), composited onto white, padded with white to a 136 x 136
    square (centred) and resized to uint8 [S, S, 3] with Pillow's Lanczos
    filter; None for an empty bitmap.

Names per locale (`names_by_locale`):
  * "en": always `emoji-test.txt`'s English name (CLDR's English name, also
    for the skin-tone, flag and keycap emoji that `en.xml` does not list).
  * other locales: the locale file's own short name of the emoji (U+FE0F
    removed) or, if it has none, of the emoji without its skin-tone
    modifiers (so 👍🏽 gets the French "pouce vers le haut"). Emoji that
    neither resolves to (many flags, keycaps, families) have no name there.
  * child locales (en_GB, fr_CA, zh_Hant_HK, ...) list only what differs
    from their parent; only each file's own names are kept, NOT resolved
    through the parent chain, so the same string is not repeated under six
    English locales (which would skew `random_text` towards them). Use
    `select_text(locale)` (`mmjax.data.pp.text`), which falls back along
    CLDR's parent chain (en_GB -> en_001 -> en) and then to `name_en`, to
    read a child locale's full, inherited naming.
  * "en" first, then the other locales in sorted order.

`base_emoji` is the emoji that skin-tone, gender and hair variants share
(the key of `mmjax.data.builders.emoji.assign_splits`). `check_manual_dir`
and `fingerprint` check the manual directory's files and fingerprint them (by
size, without reading them).

Every error about a file is a `DataError` that names the file (and line).
"""

import hashlib
import os
from pathlib import Path
import re
from typing import Dict, List, NamedTuple, Optional, Tuple
import xml.etree.ElementTree as ET

import numpy as np

from mmjax.data.builders.base import PathLike
from mmjax.data.errors import DataError

EMOJI_TEST = "emoji/emoji-test.txt"
ANNOTATIONS = "emoji/cldr-annotations"
FONT = "emoji/NotoColorEmoji.ttf"
FONT_SIZE = 109  # The size of the font's only bitmap strike (136 x 128).
# Draft statuses of CLDR names that are used (no `draft` = approved).
USED_DRAFT = ("approved", "contributed")

UNICODE_URL = "https://unicode.org/Public/emoji/15.0/emoji-test.txt"
CLDR_URL = "https://github.com/unicode-org/cldr/tree/release-41/common/annotations"
NOTO_URL = "https://github.com/googlefonts/noto-emoji"
LAYOUT = f"""\
Expected layout of the manual directory (documented in ../shared/data/README.md
of the mmjax checkout, section emoji/):
  <manual_dir>/{EMOJI_TEST}
      Unicode's emoji list (UTS #51 emoji-test.txt format).
  <manual_dir>/{ANNOTATIONS}/<locale>.xml
      CLDR annotations (LDML), one file per locale.
  <manual_dir>/{FONT}
      Noto Color Emoji (CBDT color bitmap font, strikes at size {FONT_SIZE}).
Where to get them:
  emoji-test.txt: {UNICODE_URL}
  annotations: {CLDR_URL}
  font: {NOTO_URL} (fonts/NotoColorEmoji.ttf)
"""

# Code points of the base-emoji rule (see `base_emoji`).
VS16 = "\ufe0f"
ZWJ = "\u200d"
SKIN_TONES = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))
GENDER_SIGNS = ("\u2640", "\u2642")
MAN, WOMAN, PERSON = "\U0001F468", "\U0001F469", "\U0001F9D1"
# UTS #51 section 2.3.1 (gender-neutral emoji): single-code-point gendered
# emoji -> their gender-neutral form, as `base_emoji` spells it (no U+FE0F).
GENDER_NEUTRAL = {
    MAN: PERSON, WOMAN: PERSON,                                  # 👨 👩 -> 🧑
    "\U0001F466": "\U0001F9D2", "\U0001F467": "\U0001F9D2",      # 👦 👧 -> 🧒
    "\U0001F474": "\U0001F9D3", "\U0001F475": "\U0001F9D3",      # 👴 👵 -> 🧓
    "\U0001F934": "\U0001FAC5", "\U0001F478": "\U0001FAC5",      # 🤴 👸 -> 🫅
    "\U0001F385": PERSON + ZWJ + "\U0001F384",                   # 🎅 -> 🧑‍🎄
    "\U0001F936": PERSON + ZWJ + "\U0001F384",                   # 🤶 -> 🧑‍🎄
    # 👫 👬 👭 -> 🧑‍🤝‍🧑
    "\U0001F46B": PERSON + ZWJ + "\U0001F91D" + ZWJ + PERSON,
    "\U0001F46C": PERSON + ZWJ + "\U0001F91D" + ZWJ + PERSON,
    "\U0001F46D": PERSON + ZWJ + "\U0001F91D" + ZWJ + PERSON,
    # 💏 (kiss) and 💑 (couple with heart) -> their person ZWJ forms.
    "\U0001F48F": PERSON + ZWJ + "\u2764" + ZWJ + "\U0001F48B" + ZWJ + PERSON,
    "\U0001F491": PERSON + ZWJ + "\u2764" + ZWJ + PERSON,
}

_LINE = re.compile(
    r"^(?P<cps>[0-9A-Fa-f]{4,6}(?: [0-9A-Fa-f]{4,6})*)\s*;\s*"
    r"(?P<status>fully-qualified|minimally-qualified|unqualified|component)"
    r"\s*#\s*(?P<emoji>\S+)\s+E(?P<version>\d+\.\d+)\s+(?P<name>\S.*?)\s*$")
_HEADER = re.compile(r"^#\s*(?P<kind>group|subgroup):\s*(?P<value>\S.*?)\s*$")


class Emoji(NamedTuple):
  """One fully-qualified emoji of emoji-test.txt.

  Attributes:
    emoji: the emoji (its code points, U+FE0F included as listed).
    name_en: the English name, e.g. "grinning face".
    group: e.g. "Smileys & Emotion".
    subgroup: e.g. "face-smiling".
    version: the Emoji version that added it, e.g. "1.0".
  """
  emoji: str
  name_en: str
  group: str
  subgroup: str
  version: str


def _read_text(path: Path, expected: str) -> str:
  try:
    return path.read_text(encoding="utf-8")
  except FileNotFoundError as e:
    raise DataError(f"{path}: missing file; expected {expected}.\n"
                    f"{LAYOUT}") from e
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: cannot read the file ({e}); expected "
                    f"{expected}.") from e


def parse_emoji_test(path: PathLike) -> List[Emoji]:
  """The fully-qualified emoji of an emoji-test.txt, "Component" aside.

  Format (UTS #51, emoji-test.txt): `# group: <name>` and `# subgroup:
  <name>` headers, then lines `<code points> ; <status> # <emoji>
  E<version> <name>`. Other comment and blank lines are skipped.

  Args:
    path: the emoji-test.txt file.

  Returns:
    The emoji in file order (CLDR order).

  Raises:
    DataError: naming the file (and line), if it is missing or unreadable, a
      data line is malformed, its emoji differs from its code points, it
      comes before a group / subgroup header, an emoji is listed twice, a
      subgroup name is used in two groups, or there is no emoji.
  """
  path = Path(path)
  expected = "Unicode's emoji-test.txt (UTS #51 format)"
  text = _read_text(path, expected)
  group = subgroup = None
  subgroup_group: Dict[str, str] = {}
  result, seen = [], set()
  for number, line in enumerate(text.splitlines(), start=1):
    line = line.strip()
    where = f"{path}:{number}"
    header = _HEADER.match(line)
    if header:
      if header["kind"] == "group":
        group, subgroup = header["value"], None
      else:
        subgroup = header["value"]
        if subgroup_group.setdefault(subgroup, group) != group:
          raise DataError(f"{where}: subgroup {subgroup!r} appears in groups "
                          f"{subgroup_group[subgroup]!r} and {group!r}; "
                          f"expected unique subgroup names.")
      continue
    if not line or line.startswith("#"):
      continue
    match = _LINE.match(line)
    if not match:
      raise DataError(f"{where}: malformed line {line[:80]!r}; expected "
                      f"'<code points> ; <status> # <emoji> E<version> "
                      f"<name>' ({expected}).")
    emoji = "".join(chr(int(c, 16)) for c in match["cps"].split())
    if emoji != match["emoji"]:
      raise DataError(f"{where}: the emoji {match['emoji']!r} differs from "
                      f"its code points {match['cps']}.")
    if group is None or subgroup is None:
      raise DataError(f"{where}: emoji before a '# group:' and a "
                      f"'# subgroup:' header ({expected}).")
    if match["status"] != "fully-qualified" or group == "Component":
      continue
    if emoji in seen:
      raise DataError(f"{where}: {emoji} ({match['cps']}) is listed twice.")
    seen.add(emoji)
    result.append(Emoji(emoji, match["name"], group, subgroup,
                        match["version"]))
  if not result:
    raise DataError(f"{path}: no fully-qualified emoji outside the Component "
                    f"group; expected {expected}.")
  return result


def parse_annotations(path: PathLike) -> Tuple[str, Dict[str, str], int]:
  """The short names (`type="tts"`) of one CLDR annotations file.

  Args:
    path: `<locale>.xml` in CLDR's LDML annotations format.

  Returns:
    (locale, {cp: short name}, number of names left out for their draft
    status). The locale is the file name's stem, e.g. "en_GB"; cp is the
    emoji without U+FE0F, as CLDR writes it. Names whose `draft` is
    "unconfirmed" or "provisional" are left out (see `USED_DRAFT`).

  Raises:
    DataError: naming the file, if it cannot be read or parsed as XML, its
      root is not <ldml>, or an annotation lacks `cp` or is empty.
  """
  path = Path(path)
  try:
    root = ET.parse(path).getroot()
  except (OSError, ET.ParseError) as e:
    raise DataError(f"{path}: cannot parse ({e}); expected a CLDR "
                    f"annotations file (LDML XML).") from e
  if root.tag != "ldml":
    raise DataError(f"{path}: root element <{root.tag}>; expected <ldml> "
                    f"(a CLDR annotations file).")
  names, unused = {}, 0
  for node in root.iter("annotation"):
    if node.get("type") != "tts":
      continue
    cp, name = node.get("cp"), (node.text or "").strip()
    if not cp or not name:
      raise DataError(f"{path}: an <annotation type=\"tts\"> without a cp "
                      f"or a name (cp={cp!r}).")
    if node.get("draft", "approved") not in USED_DRAFT:
      unused += 1
      continue
    names[cp] = name
  return path.stem, names, unused


def load_annotations(folder: PathLike) -> Tuple[Dict[str, Dict[str, str]],
                                                Dict[str, int]]:
  """`({locale: {cp: short name}}, {locale: #draft names left out})` of
  every `*.xml` in `folder`, sorted by locale (see `parse_annotations`).

  Raises:
    DataError: naming the folder if it is missing or has no .xml file, or a
      file (see `parse_annotations`).
  """
  folder = Path(folder)
  files = sorted(folder.glob("*.xml")) if folder.is_dir() else []
  if not files:
    raise DataError(f"{folder}: missing folder of CLDR annotations "
                    f"(<locale>.xml).\n{LAYOUT}")
  names, unused = {}, {}
  for path in files:
    _, names[path.stem], unused[path.stem] = parse_annotations(path)
  return names, unused


def strip_skin_tones(emoji: str) -> str:
  """The emoji without U+FE0F and skin-tone modifiers U+1F3FB-U+1F3FF."""
  return "".join(c for c in emoji if c != VS16 and c not in SKIN_TONES)


def base_emoji(emoji: str) -> str:
  """The emoji that its skin-tone, gender and hair variants share.

  Rule, applied in order:
    1. drop U+FE0F and the skin-tone modifiers U+1F3FB-U+1F3FF;
    2. drop ZWJ + gender sign (U+200D U+2640 / U+2642): 🏃‍♀️ -> 🏃;
    3. in a ZWJ sequence, man U+1F468 and woman U+1F469 become person
       U+1F9D1, wherever they are: 👩‍💻 / 👨‍💻 -> 🧑‍💻, 👨‍🦰 -> 🧑‍🦰,
       👩‍❤️‍👨 -> 🧑‍❤‍🧑;
    4. a single gendered emoji becomes its gender-neutral form (UTS #51
       section 2.3.1, `GENDER_NEUTRAL`): 👨 / 👩 -> 🧑, 👦 / 👧 -> 🧒,
       👫 -> 🧑‍🤝‍🧑, 💑 -> 🧑‍❤‍🧑.
  Examples: 👩🏽‍💻, 🧑‍💻 and 👨‍💻 -> 🧑‍💻; 🏃‍♀️ and 🏃🏿 -> 🏃; 😀 -> 😀.
  Families keep their children (👨‍👩‍👦 -> 🧑‍🧑‍👦, not 👪).

  Args:
    emoji: an emoji (any qualification).

  Returns:
    The base (no U+FE0F); it need not be in the emoji list itself.
  """
  base = strip_skin_tones(emoji)
  for sign in GENDER_SIGNS:
    base = base.replace(ZWJ + sign, "")
  if ZWJ in base:
    base = ZWJ.join(PERSON if part in (MAN, WOMAN) else part
                    for part in base.split(ZWJ))
  return GENDER_NEUTRAL.get(base, base)


def names_by_locale(item: Emoji,
                    annotations: Dict[str, Dict[str, str]]) -> Dict[str, str]:
  """`{locale: short name}` of an emoji, "en" first then sorted (see the
  module docstring): "en" is `item.name_en`; another locale's name is its
  own annotation of the emoji, else of the emoji without skin tones."""
  keys = [item.emoji.replace(VS16, "")]
  if strip_skin_tones(item.emoji) != keys[0]:
    keys.append(strip_skin_tones(item.emoji))
  names = {"en": item.name_en}
  for locale in sorted(annotations):
    if locale == "en":
      continue
    for key in keys:
      if key in annotations[locale]:
        names[locale] = annotations[locale][key]
        break
  return names


class Renderer:
  """Draws emoji with Noto Color Emoji through Pillow.

  Args:
    font_path: the .ttf file.
    image_size: S of the output [S, S, 3].

  Raises:
    DataError: naming the font if Pillow cannot load it.
  """

  def __init__(self, font_path: PathLike, image_size: int):
    from PIL import ImageFont  # pylint: disable=g-import-not-at-top
    self._size = image_size
    try:
      self._font = ImageFont.truetype(os.fspath(font_path), FONT_SIZE)
    except OSError as e:
      raise DataError(f"{font_path}: cannot load the font ({e}); expected "
                      f"Noto Color Emoji (a CBDT bitmap font with strikes "
                      f"at size {FONT_SIZE}).\n{LAYOUT}") from e

  def rgba(self, emoji: str) -> np.ndarray:
    """uint8 [h, w, 4]: the emoji in the font's em box (136 x 128 for one
    glyph), transparent where nothing is drawn."""
    from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
    left, top, right, bottom = self._font.getbbox(emoji)
    canvas = Image.new("RGBA", (max(right, 1), max(bottom, 1)), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), emoji, font=self._font,
                                embedded_color=True)
    del left, top
    return np.asarray(canvas)

  def __call__(self, emoji: str) -> Optional[np.ndarray]:
    """uint8 [S, S, 3] on white (see the module docstring), or None when the
    font draws nothing (all pixels transparent)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    rgba = self.rgba(emoji)
    if not rgba[..., 3].any():
      return None
    h, w = rgba.shape[:2]
    side = max(h, w)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(Image.fromarray(rgba),
                           ((side - w) // 2, (side - h) // 2))
    image = square.convert("RGB").resize(
        (self._size, self._size), resample=Image.Resampling.LANCZOS)
    return np.asarray(image)


def check_manual_dir(manual_dir: PathLike) -> None:
  """Checks that the emoji files are in `manual_dir` (existence only).

  Raises:
    DataError: listing every missing file or folder (emoji-test.txt, the
      font, cldr-annotations/ with at least one .xml), with `LAYOUT`.
  """
  root = Path(manual_dir)
  missing = [str(root / name) for name in (EMOJI_TEST, FONT)
             if not (root / name).is_file()]
  annotations = root / ANNOTATIONS
  if not annotations.is_dir():
    missing.append(f"{annotations}/ (folder of <locale>.xml)")
  elif not any(annotations.glob("*.xml")):
    missing.append(f"{annotations}/*.xml (the folder has no annotations)")
  if missing:
    listing = "\n".join(f"  - {m}" for m in missing)
    raise DataError(f"The manual data directory {root} lacks the emoji "
                    f"files. Missing:\n{listing}\n{LAYOUT}")


def fingerprint(manual_dir: PathLike) -> str:
  """Short content fingerprint of the emoji files (stat only, no reads).

  sha256 over the relative path and size in bytes of emoji-test.txt, the
  font and every cldr-annotations/*.xml, in sorted order.

  Returns:
    16 lowercase hex characters.

  Raises:
    DataError: from `check_manual_dir`, if files are missing.
  """
  root = Path(manual_dir)
  check_manual_dir(root)
  names = [EMOJI_TEST, FONT] + [
      f"{ANNOTATIONS}/{p.name}"
      for p in sorted((root / ANNOTATIONS).glob("*.xml"))]
  digest = hashlib.sha256()
  for name in names:
    digest.update(f"{name}\t{(root / name).stat().st_size}\n".encode())
  return digest.hexdigest()[:16]

