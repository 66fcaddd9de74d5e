"""Password hashing (argon2id), session tokens (JWT), API keys, device secrets, one-time tokens; the
strength of the server's secrets (and generating them) and the password policy."""

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edgefleet.server.errors import AuthError, ConflictError, ServerError

log = logging.getLogger(__name__)
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
    token_id: str | None = None
    """The token's own id (`jti`): logging out revokes this one session (`revoked_tokens`). Tokens
    issued before it existed have none; logging out of one ends all the user's sessions instead."""


def issue_token(secret: str, user_id: int, org_id: int, ttl_s: int, epoch: int = 0) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "org": org_id,
        "sep": epoch,
        "jti": secrets.token_urlsafe(16),
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
            token_id=str(claims["jti"]) if claims.get("jti") else None,
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


# --- files only this server's user may read -----------------------------------------------------
PRIVATE_FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_sqlite_file(path: str | Path) -> None:
    """Make the SQLite database at `path` readable by this server's user only (0600), before SQLite
    opens it: SQLite creates its `-wal`, `-shm` and `-journal` files with the database file's mode, so
    they follow. A file that exists with wider rights (made by an older version under umask 022) is
    narrowed, companions too; a file this user cannot change is left and logged."""
    database = Path(path)
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile (0600 too)
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    for file in (database, *(database.with_name(database.name + s) for s in SQLITE_COMPANIONS)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:  # only take the others' rights away (a read-only file stays read-only)
                file.chmod(mode & 0o700)
                log.warning("%s was open to other users (%o); narrowed to %o", file, mode, mode & 0o700)
        except FileNotFoundError:
            continue
        except OSError as err:
            log.warning("cannot make %s private (0600): %s", file, err)


# --- secrets: strength, and generated ones kept next to the database ----------------------------
MIN_SECRET_BITS = 128
"""What the secret key and the ingest password must be worth (estimated): `secrets.token_urlsafe(32)`
is about 250 by this estimate; `'a' * 32` about 9."""
_ZXCVBN_MAX = 72  # zxcvbn refuses longer input; the estimate covers the first 72 characters


def _alphabet_bits(text: str) -> float:
    size = (
        26 * any(c.islower() for c in text)
        + 26 * any(c.isupper() for c in text)
        + 10 * any(c.isdigit() for c in text)
        + 33 * any(not c.isalnum() for c in text)
    )
    return math.log2(size) if size > 1 else 0.0


def secret_strength_bits(secret: str) -> float:
    """Estimated bits of a secret: zxcvbn finds what a guesser tries first (repeats, sequences,
    keyboard walks, dictionary words, dates) and prices each; the random stretches between them count
    at the secret's alphabet (zxcvbn's own guess of 10 per character undersells a random token)."""
    from zxcvbn import zxcvbn

    head = secret[:_ZXCVBN_MAX]
    if not head:
        return 0.0
    per_char = _alphabet_bits(head)
    bits = 0.0
    matches: list[dict[str, Any]] = list(zxcvbn(head)["sequence"])  # type: ignore[arg-type]  # stubs: no bruteforce
    for match in matches:
        random_cost = len(match["token"]) * per_char
        if match["pattern"] == "bruteforce" or len(match["token"]) < 4:  # a 3-letter "word" in a token
            bits += random_cost
        else:
            bits += min(math.log2(max(float(match["guesses"]), 1.0)), random_cost)
    return bits


def weak_secret(secret: str, known: Iterable[str] = ()) -> str | None:
    """Why `secret` must not be used (None when it may): a published value, or too guessable."""
    if secret in set(known):
        return "is a published default"
    bits = secret_strength_bits(secret)
    if bits < MIN_SECRET_BITS:
        return f"is too weak (about {bits:.0f} bits estimated, {MIN_SECRET_BITS} needed)"
    return None


SECRET_FIELDS = ("secret_key", "ingest_password")


def load_or_create_secrets(path: Path) -> tuple[dict[str, str], bool]:
    """The server's generated secrets in `path` (JSON, mode 0600): those missing are generated and
    written (atomically, owner-only from the first byte). Returns (secrets, whether any was made).
    A file readable by others is narrowed to 0600 and logged."""
    values: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SecretsFileError(f"cannot read the generated secrets in {path}: {err}") from err
        if not isinstance(loaded, dict):
            raise SecretsFileError(f"{path} is not a JSON object of secrets")
        values = {k: v for k, v in loaded.items() if k in SECRET_FIELDS and isinstance(v, str)}
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(PRIVATE_FILE_MODE)
            log.warning("%s was readable by other users (%o); narrowed to 0600", path, mode)
    missing = [name for name in SECRET_FIELDS if name not in values]
    if not missing:
        return values, False
    values.update({name: secrets.token_urlsafe(48) for name in missing})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise SecretsFileError(f"cannot write the generated secrets to {path}: {err.strerror}") from err
    return values, True


class SecretsFileError(ServerError):
    """The generated-secrets file cannot be read or written."""


# --- passwords people choose ----------------------------------------------------------------------
MIN_PASSWORD_SCORE = 3
"""zxcvbn's score (0-4) a password needs: 3 is "safely unguessable" online (about 10^8 guesses);
`password12` scores 1, `correct horse battery` 4."""


class WeakPasswordError(ConflictError):
    """A password the policy refuses (the API answers 422). A ConflictError for callers that already
    show conflicts to the user as they are (the dashboard's forms)."""


def check_password(password: str, *, context: Iterable[str] = ()) -> None:
    """Refuse a password that is short, common, or made of what a guesser tries first (dictionary
    words, names, keyboard walks, dates, repeats, or the user's email and organization)."""
    from zxcvbn import zxcvbn

    if len(password) < 10:
        raise WeakPasswordError("the password needs at least 10 characters")
    words = [w for text in context for w in (text, *text.replace("@", " ").replace(".", " ").split()) if w]
    result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[*words, "edgefleet"])
    if int(result["score"]) < MIN_PASSWORD_SCORE:
        feedback = result.get("feedback") or {}
        hint = feedback.get("warning") or "it is among the first a guesser would try"
        raise WeakPasswordError(
            f"this password is too easy to guess ({hint.rstrip('.').lower()}); "
            "use a longer one, e.g. several unrelated words"
        )
