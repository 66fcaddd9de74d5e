"""The server's exception hierarchy; routes translate these to HTTP responses."""


class ServerError(Exception):
    """Base class for errors raised by the server package."""


class ConfigError(ServerError):
    """Settings that cannot be used (a default secret outside demo mode, a bad URL)."""


class DatabaseError(ServerError):
    """The database cannot be reached or migrated."""


class NotFoundError(ServerError):
    """The object does not exist, or belongs to another organization (we do not say which)."""


class ConflictError(ServerError):
    """The request contradicts the current state (duplicate email, device id taken)."""


class AuthError(ServerError):
    """Credentials or a token are missing, wrong, expired or revoked."""


class PermissionDeniedError(ServerError):
    """The caller is known but their role does not allow this."""


class RateLimitedError(ServerError):
    """Too many attempts; `retry_after` seconds until the next one is allowed."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerError(ServerError):
    """The MQTT broker cannot be reached, or refused us."""
