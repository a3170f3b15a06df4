"""Input data: prepared TFDS datasets, preprocessing ops, the tf.data pipeline.

  pipeline.py          the tf.data pipeline: a prepared builder -> batches
                       (in memory or streaming), each modality's pp spec
  input_checkpoint.py  the streaming input's position, as an Orbax item
  errors.py            DataError (and DataConversionWarning) for raw files
  pp/                  preprocessing ops, in the style of big_vision's pp:
                       registry.py (`OPS`, the op contract), builder.py (a
                       spec string -> a chain of ops), one file of ops per
                       modality (general, image, audio, text, video,
                       pretrained)
  builders/            TFDS builders, prepared once from raw local files:
                       registry.py (`DATASETS`, `get_builder`), base.py (the
                       shared base class and directories), one file per
                       dataset (av_digits, av_digit_clips, emoji), their raw
                       readers (sources, emoji_sources), splits, tokenizer,
                       and manifest/ (`multimodal_manifest`, your own data)
"""
