"""Why a model cannot be served or moved as asked: the tiers' domain errors.

Raised by the model manager; the API maps each class to an HTTP status and the
OpenAI error shape (`api.errors.from_model_error`), the CLI and the TUI read the
same message. `code` is the stable, machine-readable reason ("pinned",
"model_restarting", "insufficient_memory"...); `retry_after` says when trying again
may work, for errors that can pass.
"""

from __future__ import annotations


class ModelError(Exception):
    code = "model_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = "model",
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.retry_after = retry_after
        # False: retrying soon cannot help (clients are told not to): None: the default.
        self.retryable = self.default_retryable if retryable is None else retryable

    default_retryable = True


class ModelNotFound(ModelError):
    """No model of that name or alias."""

    code = "model_not_found"

    def __init__(self, model: str, hint: str = "") -> None:
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it. "
            + (hint or "List the available models with GET /v1/models.")
        )


class BadModelRequest(ModelError):
    """The request makes no sense for this model (pulling a local file, ...)."""


class ModelConflict(ModelError):
    """The model's state forbids the move now (pinned, busy)."""


class ModelUnavailable(ModelError):
    """Not servable now, for a reason that can pass (restarting, no room, offline hub)."""


class ModelFailed(ModelError):
    """The model cannot be loaded (a bad file, a worker that fails to start)."""

    default_retryable = False
