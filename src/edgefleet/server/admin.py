"""Administration outside the API (the CLI): create users and organizations, migrate."""

from dataclasses import dataclass

from sqlalchemy import select

from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.db.models import Organization
from edgefleet.server.services import accounts


@dataclass(frozen=True)
class CreatedUser:
    user_id: int
    org_id: int
    org_name: str
    role: str


def migrate(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def create_user(db_url: str, email: str, password: str, role: str, organization: str) -> CreatedUser:
    """Add a user to the organization named `organization`, creating it (with this user as owner)
    when it does not exist yet."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with transaction(make_sessionmaker(engine)) as session:
            org = session.scalar(select(Organization).where(Organization.name == organization))
            email = email.strip().lower()
            if org is None:
                user = accounts.sign_up(session, email, password, organization)
                return CreatedUser(user.id, user.org_id, organization, user.role)
            user = accounts.create_user(session, org.id, email, password, role)
            return CreatedUser(user.id, org.id, org.name, role)
    finally:
        engine.dispose()
