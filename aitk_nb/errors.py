"""Errors a user can act on. The magics and the CLI turn these into one line; anything else is a bug
and keeps its traceback."""


class AitkError(Exception):
    """Base of every user-facing error: the message says what went wrong and what to do."""


# -- project and files ---------------------------------------------------------------------------
class ProjectError(AitkError):
    """No project here (no `infra/` folder), or its layout is broken."""


class ConfigError(AitkError):
    """A file the user owns (parameters, inference.config.json) is unreadable or invalid."""


class NotProvisionedError(AitkError):
    """A verb needs a provisioned target or an endpoint that does not exist yet."""


class ConfirmationError(AitkError):
    """A change to something that existed (a resource, a key) was not confirmed: nothing was changed;
    the message names the flag that confirms it (--yes)."""


# -- deploy and the replica ----------------------------------------------------------------------
class DeployError(AitkError):
    """Deploy inputs are wrong (a missing adapter or model path) or the sync failed."""


class PortInUseError(AitkError):
    """The local replica's port is taken by another process."""


class ReplicaCrashedError(AitkError):
    """The replica exited; the message carries the tail of its log."""


class ReplicaOutdatedError(AitkError):
    """The replica runs, but was started before a provision changed how it is reached or run."""


class ReadinessTimeoutError(AitkError, TimeoutError):
    """The endpoint did not answer its health route in time."""


# -- long operations -----------------------------------------------------------------------------
class OperationCancelledError(AitkError):
    """A long operation stopped at a safe point because it was cancelled; the message says what that
    left behind and how to finish."""


# -- evaluation ----------------------------------------------------------------------------------
class EvalError(AitkError):
    """Evaluation input is wrong (bad JSONL, unknown variant) or the endpoint refused it."""
