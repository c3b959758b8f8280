"""Errors a scoring task reports to its user; each message names the culprit, and the exit codes
the worker CLI turns them into."""

EXIT_BAD_INPUT = 2  # the data or the model package is wrong: running again cannot help
EXIT_STORAGE_UNAVAILABLE = 3  # storage did not answer or is full: a retry may succeed


class ScoringError(Exception):
    """Base class: the worker CLI turns these into a one-line message and exit code 2."""


class InputDataError(ScoringError):
    """A product file is missing, unreadable or breaks the schema or the data rules."""


class ModelPackageError(ScoringError):
    """A model package is incomplete, corrupt or does not match its manifest."""


class ContentChangedError(ScoringError):
    """A file's content is not what was recorded of it (its sha256): written again since."""


class StorageUnavailableError(ScoringError):
    """Storage did not answer, even after the client's retries with backoff."""


class UnsafeIdentifierError(ScoringError, ValueError):
    """A name that would become a storage path or a cloud id (model version, file name in a
    manifest, run id, partition) does not fit the allowed pattern."""


class UsageError(ScoringError):
    """The worker was called without what it needs (a partition the run's manifest lacks, say)."""


class WriteNotAllowedError(ScoringError):
    """A scoring task wrote a file it does not own: one the layout does not list for it, or one its
    write grants do not cover (or no longer do)."""
