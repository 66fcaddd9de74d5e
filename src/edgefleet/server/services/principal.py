"""Who is calling: a user in one organization, with a role."""

from dataclasses import dataclass
from typing import Literal

from edgefleet.server.db.models import User
from edgefleet.server.errors import PermissionDeniedError
from edgefleet.server.schemas import ROLE_RANK


@dataclass(frozen=True)
class Principal:
    user: User
    via: Literal["session", "api_key"]

    @property
    def org_id(self) -> int:
        return self.user.org_id

    @property
    def role(self) -> str:
        return self.user.role

    def require(self, role: str) -> None:
        if ROLE_RANK[self.role] < ROLE_RANK[role]:
            raise PermissionDeniedError(f"this needs the {role} role; you are {self.role}")
