"""Who may do what in the portal: one decision function, :func:`decide`.

Every page and action of the portal resolves a :class:`PortalPrincipal` (the signed-in
user) and calls ``decide(principal, action, subject)`` before it reads or changes
anything; the state changes themselves then go through the same functions the API calls
(``hub.demand.DemandBook.submit/approve/refuse``, with the same checks: only the provider
answers, an approval only narrows). A department user acts for its department only, an
application owner for its application only: ``subject`` names what the action is about
and must be the principal's own.

The API's pipeline (authenticate -> rate limit -> decide -> audit) has the same four
steps in :func:`hub.portal.views.guard`; this module is the "decide" step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hub.keys import Principal, PrincipalKind
from hub.portal.users import PortalUser, Role


class Action(StrEnum):
    view_catalog = "view_catalog"
    export_catalog = "export_catalog"
    view_health = "view_health"
    view_docs = "view_docs"
    submit_demand = "submit_demand"
    view_application = "view_application"
    view_queue = "view_queue"
    view_demand = "view_demand"
    answer_demand = "answer_demand"
    view_supervision = "view_supervision"
    view_quality = "view_quality"
    view_audit = "view_audit"
    verify_chain = "verify_chain"
    file_dispute = "file_dispute"
    view_disputes = "view_disputes"
    answer_dispute = "answer_dispute"
    view_holds = "view_holds"
    decide_hold = "decide_hold"
    view_agreement = "view_agreement"


@dataclass(frozen=True)
class Subject:
    """What an action is about: a department's, an application's, or a demand of both."""

    department: str | None = None
    application: str | None = None


@dataclass(frozen=True)
class PortalPrincipal:
    """The signed-in user, as the portal's rules see it."""

    user: PortalUser

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def actor(self) -> str:
        """How the demand history and the audit chain name this user."""
        return f"portal:{self.user.username}"

    @property
    def api_principal(self) -> Principal | None:
        """The API principal this user acts as (a department's or an application's),
        None for the data bureau and auditors, who hold no API key's powers."""
        if self.user.role is Role.department and self.user.department:
            return Principal(PrincipalKind.department, self.user.department, self.actor)
        if self.user.role is Role.application_owner and self.user.application:
            return Principal(PrincipalKind.application, self.user.application, self.actor)
        return None


class PolicyDeniedError(PermissionError):
    """The action is not this principal's to take; ``hide`` asks to answer 404 (do not
    confirm that someone else's demand exists)."""

    def __init__(self, message: str, *, hide: bool = False) -> None:
        super().__init__(message)
        self.hide = hide


EVERYONE = frozenset(Role)
_ROLES: dict[Action, frozenset[Role]] = {
    Action.view_catalog: EVERYONE,
    Action.export_catalog: EVERYONE,
    Action.view_health: EVERYONE,
    Action.view_docs: EVERYONE,
    Action.submit_demand: frozenset({Role.application_owner}),
    Action.view_application: frozenset({Role.application_owner, Role.data_bureau, Role.auditor}),
    Action.view_queue: frozenset({Role.department, Role.data_bureau}),
    Action.view_demand: EVERYONE,
    Action.answer_demand: frozenset({Role.department}),
    Action.view_supervision: frozenset({Role.data_bureau, Role.department, Role.auditor}),
    Action.view_quality: frozenset({Role.department, Role.data_bureau}),
    Action.view_audit: frozenset({Role.auditor}),
    Action.verify_chain: frozenset({Role.auditor}),
    Action.file_dispute: frozenset({Role.application_owner}),
    Action.view_disputes: frozenset({Role.department, Role.data_bureau, Role.application_owner}),
    Action.answer_dispute: frozenset({Role.department}),
    Action.view_holds: frozenset({Role.department, Role.data_bureau}),
    Action.decide_hold: frozenset({Role.department}),
    Action.view_agreement: frozenset({Role.department, Role.data_bureau}),
}


def decide(principal: PortalPrincipal, action: Action, subject: Subject | None = None) -> None:
    """Allow, or raise PolicyDeniedError saying why.

    Scoped users are held to their own: a department user to ``subject.department``, an
    application owner to ``subject.application`` (for a demand: either side of it may
    look, only the provider may answer, only the application may submit)."""
    subject = subject or Subject()
    user = principal.user
    if user.role not in _ROLES[action]:
        raise PolicyDeniedError(f"{user.role} users cannot {action}")
    if action is Action.view_demand:
        mine = (
            (user.role is Role.department and subject.department == user.department)
            or (user.role is Role.application_owner and subject.application == user.application)
            or user.role in (Role.data_bureau, Role.auditor)
        )
        if not mine:
            raise PolicyDeniedError("not a demand of yours", hide=True)
        return
    if user.role is Role.department and subject.department not in (None, user.department):
        raise PolicyDeniedError(
            f"{user.username} acts for {user.department}, not for {subject.department}"
        )
    answering = action in (
        Action.answer_demand,
        Action.view_queue,
        Action.answer_dispute,
        Action.decide_hold,
    )
    if user.role is Role.department and answering and subject.department != user.department:
        raise PolicyDeniedError(f"only {subject.department} answers its own demands")
    if user.role is Role.application_owner and subject.application not in (
        None,
        user.application,
    ):
        raise PolicyDeniedError(
            f"{user.username} acts for {user.application}, not for {subject.application}"
        )
    if action is Action.submit_demand and subject.application != user.application:
        raise PolicyDeniedError("an application owner submits for its own application only")
