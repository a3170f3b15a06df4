"""multimodal_manifest: the user's own data, listed in a manifest (TFDS).

A manifest is a table with one row per example and one column per modality:

  * `.csv`: a header row, then one row per example (Python's `csv` dialect:
    commas, double quotes around values holding commas or newlines);
  * `.jsonl` or `.json`: one JSON object per line (blank lines are skipped;
    a key missing from a line is an empty field).

Columns:
  image: a file path, relative to the manifest's folder (or absolute): a
    PNG, JPEG, BMP or GIF image (GIF: its first frame), decoded with Pillow
    and converted to RGB.
  audio: a file path (as above): a WAV, FLAC or OGG recording, decoded with
    `soundfile`, or any other file with an audio stream that PyAV (FFmpeg)
    decodes, e.g. MP3, M4A, MP4, WebM or MKV (its first audio stream, from
    its first sample); mixed down to mono (mean of the channels) and
    resampled to `sample_rate` Hz with `librosa.resample(res_type=
    "soxr_hq")` when its own rate differs.
  text: the text itself (UTF-8), inline.
  video: a path (as above) to a video file that PyAV (FFmpeg) decodes, e.g.
    MP4, WebM, AVI, MKV or MOV (its first video stream), or to a folder of
    PNG, JPEG or BMP frames (the files with those suffixes, in file-name
    order, so number them with leading zeros; other files are ignored)
    shown at `frame_folder_rate` frames/s (default `frame_rate`). Resampled
    to `frame_rate` frames/s (see `video.resample_indices`), cut to its first
    `max_video_seconds`, each frame converted to RGB and resized to
    `video_size` x `video_size` with Pillow (bicubic).
  label: required, the class name (a string; JSON numbers are read as their
    text, e.g. 3 -> "3").
  split: optional, "train", "validation" or "test". Without it, the rows of
    each label are shuffled with `split_seed` and divided by
    `split_fractions` (see `splits.assign_splits`).
At least one of image, audio, text and video is needed. Other columns are
an error.

Incomplete rows: an empty modality cell (CSV), or a missing or `null` key
(JSON lines), means the example lacks that modality (a row without any
modality is an error naming it, and so is a modality column empty in every
train row, `splits.assign_splits`). Such a dataset stores, per example, a
placeholder for each modality it lacks (zeros of the feature's dtype: an
image of the stored size, 1 audio sample, 1 video frame; an empty text) and
a `present` flag per modality, which the input pipeline turns into the
model's presence mask (`mmjax.data.pipeline`), so the placeholder is masked,
never read. A row without a video also lacks its soundtrack. `label` and
`split`, when the manifest has a split column, must be filled in every row.

Soundtracks: with a video column and no audio column, the audio modality
is the video files' soundtracks when `video_soundtrack` (default True) and
every row's video file has an audio stream (`media.modalities_of` probes
their headers): each its first audio stream, aligned so that sample 0 is at the
video's first frame and cut to `max_video_seconds` (`read_soundtrack`),
then stored like the audio column's files. When no video has one (frame
folders have none), there is no audio; when only some have, a DataError
names the first row without one.

Features per example (only the dataset's modalities, `media.modalities_of`):
  image: uint8 [H, W, 3]: [S, S, 3] resized with Pillow (bicubic) when
    `image_size` S is given, else the files' own size, which all images must
    share (stored as PNG).
  audio: int16 [samples] (variable length), mono at `sample_rate` Hz, as
    av_digits stores it (pp: `to_float|pad_or_crop(...)`); from the audio
    column, or the videos' soundtracks (see above).
  text: tf.string [], the row's text.
  video: uint8 [T, S, S, 3] (T variable, 1 <= T <= ceil(max_video_seconds *
    frame_rate)), `frame_rate` frames/s, S = `video_size` (frames stored as
    PNG; pp: `sample_clip(...)`, then the `video_*` ops).
  label: int64, `ClassLabel(names=sorted labels of the whole manifest)`.
  row: int64, the example's 1-based data row in the manifest (the header is
    not a row), to trace a result back to its source.
  present: `{modality: bool}` for every modality, True where the row has
    it; only when some row lacks a modality (`ManifestConfig.incomplete`),
    so a complete manifest is stored exactly as before.
The dataset's metadata `modality_examples` counts, per split, the examples
having each modality.

If the manifest has a text column, a byte-level BPE tokenizer
(`mmjax.data.builders.tokenizer.train_tokenizer`, at most
`builder.VOCAB_SIZE` tokens) is trained on the train split's texts during
preparation and saved in `<builder.data_dir>/tokenizer`, for
`tokenize(tokenizer="{dataset_dir}/tokenizer", max_length=...)` (rows
without a text do not count).

Every problem with the manifest or a file it names is a `DataError` that
names the manifest, the line and data row and the file, e.g.

    data.csv, line 7 (row 6), column image: photos/cat_3.png: no such file

Typical use:

    from mmjax.data.builders.manifest.builder import get_builder
    builder = get_builder("/data/pets/data.csv", image_size=64)
    ds = builder.as_dataset(split="train")

Each manifest content (with the sizes and modification times of the files it
names) and each setting is prepared once into its own TFDS config directory,
e.g. `image-audio-text-video_s64_sr8000_v64_fr8_10s_seed0_1a2b3c4d`;
preparing again reuses it.

Modules: `table` (reading and checking the manifest), `splits` (the split
of its rows), `media` (decoding the files it names), `video` (PyAV and
frame-folder decoding), `fingerprint` (the content hash naming a prepared
config) and `builder` (the TFDS builder, its config and its `DATASETS`
entry, `multimodal_manifest`).
"""
