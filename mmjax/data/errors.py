"""Errors and warnings raised by the dataset layer."""


class DataError(ValueError):
  """Bad or missing input data.

  The message names the offending file (or folder) and says what was expected,
  so that it can be fixed without reading a traceback.
  """


class DataConversionWarning(UserWarning):
  """An input file was converted to the expected format (e.g. resampled).

  Issued at most once per file and call; the message names the file and every
  conversion applied to it.
  """
