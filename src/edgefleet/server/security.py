"""Password hashing (argon2id), session tokens (JWT), API keys, device secrets, one-time tokens."""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edgefleet.server.errors import AuthError

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
_DUMMY_HASH = _hasher.hash("edgefleet-dummy-password")
JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "efk_"
# Mosquitto's `$7$` password hash: PBKDF2-HMAC-SHA512, base64 salt and digest.
MOSQUITTO_ITERATIONS = 1000
_MOSQUITTO_SALT_BYTES = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (a dummy hash is checked when there is none)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    org_id: int
    expires_at: datetime
    epoch: int = 0
    """The user's session epoch when the token was issued (`User.session_epoch`)."""


def issue_token(secret: str, user_id: int, org_id: int, ttl_s: int, epoch: int = 0) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "org": org_id,
        "sep": epoch,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def read_token(secret: str, token: str) -> TokenClaims:
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
        return TokenClaims(
            user_id=int(claims["sub"]),
            org_id=int(claims["org"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            epoch=int(claims.get("sep", 0)),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as err:
        raise AuthError(f"invalid session token: {err}") from err


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """(key shown once, display prefix, stored hash)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[: len(API_KEY_PREFIX) + 6], sha256_hex(key)


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def new_one_time_token() -> tuple[str, str]:
    """(token shown once, stored sha256) for claim tokens and invites."""
    token = secrets.token_urlsafe(24)
    return token, sha256_hex(token)


def new_device_secret() -> str:
    return secrets.token_urlsafe(24)


def hash_device_secret(secret: str, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """Hash in Mosquitto's password-file form, so the same hash serves amqtt and Mosquitto."""
    salt = secrets.token_bytes(_MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_device_secret(stored: str | None, secret: str) -> bool:
    if not stored:
        return False
    try:
        _, kind, iterations, salt64, digest64 = stored.split("$")
        if kind != "7":
            return False
        salt = base64.b64decode(salt64)
        expected = base64.b64decode(digest64)
        digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)
