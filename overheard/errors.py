"""Typed errors: the runtime decides from the type whether to dead-letter or retry."""


class OverheardError(Exception):
    """Base of every error overheard raises on purpose."""


class MessageError(OverheardError):
    """Bytes that can never become a valid message: dead-lettered, never retried."""


class MalformedMessage(MessageError):
    """Not JSON, not an object, or not a valid message of its kind."""


class UnsupportedSchemaVersion(MessageError):
    """A schema_version this reader does not know."""


class TransientError(OverheardError):
    """A failure that may pass (broker, database or server down): retried, never skipped."""


class ConfigError(OverheardError):
    """The configuration is wrong; raised before anything connects."""


class SinkRejected(OverheardError):
    """A sink refused an issue for good; its reason goes into the dead letter."""


class Rebalanced(OverheardError):
    """The consumer lost its partitions before it could commit.

    Its results were already acknowledged downstream; the uncommitted messages go
    to the partitions' new owner and are processed again, which every stage absorbs
    (same issue ids, idempotent sinks). Retrying the commit could never succeed.
    """


class ModelError(ConfigError):
    """Trained model artefacts are missing, incomplete or incompatible; found at start-up."""
