"""Verification instead of paper: a claim answered yes or no with a signed evidence document.

The subject of a claim is canonicalised and checked (:mod:`hub.identifiers`): a malformed
citizen ID or credit code is a 400, never a "no". The claim is decided under ONE grant
that includes the fields it needs, on one pinned published version; with an
applicant-only grant the subject must be the applicant proven by the identity provider's
assertion. The evidence document (:mod:`hub.evidence`) names the claim, the answer and
what it was decided on, the resource, version, data_as_of, gate run, the grant and the
request, and binds the subject with a keyed digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hub.catalog.models import Resource, RowScope
from hub.demand.calendar import utc_now
from hub.identifiers import IdentifierError, IdentifierKind, parse_identifier
from hub.serve.access import Refusal
from hub.serve.policy import Caller, Reader, call_of, reader, respond, services_of
from hub.serve.records import APPLICANT_HEADER, CALLER_HEADERS, about, applicant_of, version_info
from hub.serve.services import Services
from hub.serve.sources import Condition, VersionInfo


class Claim(BaseModel):
    """A claim to verify instead of a paper certificate."""

    model_config = ConfigDict(extra="forbid")
    claim: Literal[
        "owns_property",
        "owns_no_property",
        "deed_tax_paid",
        "tax_cleared",
        "social_insurance_months",
    ]
    subject: str = Field(min_length=1, max_length=64, description="Citizen ID or credit code.")
    certificate_no: str | None = Field(default=None, max_length=100)
    months: int | None = Field(default=None, ge=1, le=600)
    insurance_type: str | None = Field(default=None, max_length=50)


@dataclass(frozen=True)
class ClaimRule:
    resource: str
    needs: tuple[str, ...]  # fields the grant must include
    subject: IdentifierKind  # what the subject must be


CLAIMS: dict[str, ClaimRule] = {
    "owns_property": ClaimRule("property_rights", ("owner_id", "status"), IdentifierKind.party_id),
    "owns_no_property": ClaimRule(
        "property_rights", ("owner_id", "status"), IdentifierKind.party_id
    ),
    "deed_tax_paid": ClaimRule(
        "tax_payments", ("taxpayer_id", "tax_type", "certificate_no"), IdentifierKind.party_id
    ),
    "tax_cleared": ClaimRule(
        "tax_clearances", ("taxpayer_id", "result", "valid_until"), IdentifierKind.party_id
    ),
    "social_insurance_months": ClaimRule(
        "social_insurance_contributions",
        ("citizen_id", "insurance_type", "period"),
        IdentifierKind.citizen_id,
    ),
}
CURRENT_RIGHT = "现势"
PENSION = "企业职工基本养老保险"


class EvidenceCheck(BaseModel):
    """Is this evidence document about this subject?"""

    model_config = ConfigDict(extra="forbid")
    evidence: str = Field(min_length=10, max_length=20_000, description="The compact JWS.")
    subject: str = Field(min_length=1, max_length=64)


async def decide(
    services: Services, claim: Claim, subject: str, resource: Resource, info: VersionInfo,
    today: date,
) -> tuple[bool, dict[str, Any]]:  # fmt: skip
    """The answer to ``claim`` about ``subject`` on the pinned version, and its basis."""
    source = services.source
    if claim.claim in {"owns_property", "owns_no_property"}:
        rights = await source.count(
            resource,
            info,
            [Condition("owner_id", "=", subject), Condition("status", "=", CURRENT_RIGHT)],
            None,
        )
        owns = rights > 0
        return (owns if claim.claim == "owns_property" else not owns), {"current_rights": rights}
    if claim.claim == "deed_tax_paid":
        if not claim.certificate_no:
            raise Refusal(422, "invalid", "deed_tax_paid needs certificate_no")
        try:
            certificate = parse_identifier(
                claim.certificate_no, IdentifierKind.code, name="certificate_no"
            )
        except IdentifierError as exc:
            raise Refusal(400, "invalid_identifier", str(exc)) from exc
        certificate = certificate.replace("（", "(").replace("）", ")")
        paid = await source.count(
            resource,
            info,
            [
                Condition("certificate_no", "=", certificate),
                Condition("tax_type", "=", "契税"),
                Condition("taxpayer_id", "=", subject),
            ],
            None,
        )
        return paid > 0, {"certificate_no": certificate, "payments": paid}
    if claim.claim == "tax_cleared":
        clear = await source.count(
            resource,
            info,
            [
                Condition("taxpayer_id", "=", subject),
                Condition("result", "=", "无欠税"),
                Condition("valid_until", ">=", today.isoformat()),
            ],
            None,
        )
        return clear > 0, {"valid_on": today.isoformat()}
    if not claim.months:
        raise Refusal(422, "invalid", "social_insurance_months needs months")
    kind = claim.insurance_type or PENSION
    months = await source.count(
        resource,
        info,
        [Condition("citizen_id", "=", subject), Condition("insurance_type", "=", kind)],
        "period",
    )
    return months >= claim.months, {"insurance_type": kind, "at_least_months": claim.months}


def verify_router() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/verify",
        name="verify",
        tags=["read"],
        openapi_extra={"parameters": CALLER_HEADERS + APPLICANT_HEADER},
    )
    async def verify(
        claim: Claim, request: Request, who: Annotated[Reader, Depends(reader)]
    ) -> Response:
        """Answer a claim with yes or no and a signed evidence document (a JWS) to file
        instead of a paper certificate. ``GET /v1/keys`` publishes the public keys."""
        from hub.evidence import profile_of, sign_evidence, subject_mac

        services = services_of(request)
        rule = CLAIMS[claim.claim]
        call = call_of(request)
        call.action, call.resource = f"verify:{claim.claim}", rule.resource
        try:
            subject = parse_identifier(claim.subject, rule.subject, name="subject")
        except IdentifierError as exc:
            raise Refusal(400, "invalid_identifier", str(exc)) from exc
        view = services.access.select(
            who.application,
            rule.resource,
            grant_id=who.grant_id,
            scenario=who.scenario,
            asked=rule.needs,
        )
        call.grant_id = view.grant_id
        if view.row_scope is RowScope.applicant:
            applicant = await applicant_of(request, view)
            if applicant != subject or rule.needs[0] not in view.subject_fields:
                raise Refusal(
                    403,
                    "forbidden",
                    f"grant {view.grant_id} covers only the applicant: the subject must be "
                    "the applicant the identity provider's assertion names",
                )
        resource = view.resource
        info = await version_info(services, resource)
        call.version = info.version
        now = utc_now()
        answer, basis = await decide(services, claim, subject, resource, info, now.date())
        # never a silent yes on a disputed field: the answer and its evidence state it
        disputes = services.disputes.for_subject(resource.code, subject, rule.needs)
        facts = about(resource, info, now)
        if disputes:
            facts = {**facts, "disputed": True, "disputes": disputes}
        profile = profile_of(services.settings)
        document = sign_evidence(
            {
                "jti": call.request_id,
                "azp": who.application,
                "claim": claim.claim,
                "answer": answer,
                "basis": basis,
                "resource": resource.code,
                "version": info.version,
                "data_as_of": facts["data_as_of"],
                "gate_run_id": info.gate_run_id,
                "stale": facts["stale"],
                "grant_id": view.grant_id,
                "sub_mac": subject_mac(profile, services.subject_key, subject),
                **({"disputed": True, "disputes": disputes} if disputes else {}),
            },
            services.evidence_signer,
        )
        call.fields, call.row_count = rule.needs, 1
        return await respond(request, {"answer": answer, "evidence": document, **facts})

    @router.post("/v1/evidence/check", name="evidence_check", tags=["read"])
    async def check(body: EvidenceCheck, request: Request, principal: Caller) -> Response:
        """Whether an evidence document verifies and is about ``subject`` (the subject
        digest needs the hub's key, so this check is made here, audited)."""
        from hub.evidence import EvidenceError, check_subject, profile_of, verify_evidence

        services = services_of(request)
        try:
            subject = parse_identifier(body.subject, IdentifierKind.party_id, name="subject")
        except IdentifierError as exc:
            raise Refusal(400, "invalid_identifier", str(exc)) from exc
        try:
            verified = verify_evidence(body.evidence, published_keys(services))
            check_subject(verified, subject, services.subject_key, profile_of(services.settings))
        except EvidenceError as exc:
            return await respond(
                request, {"valid": False, "reason": exc.reason, "detail": str(exc)}
            )
        call_of(request).resource = verified.resource
        return await respond(
            request,
            {"valid": True, "claim": verified.claim, "resource": verified.resource,
             "version": verified.version, "answer": verified.evidence.get("answer")},
        )  # fmt: skip

    @router.get("/v1/keys", name="keys", tags=["read"])
    async def keys(request: Request) -> Response:
        """The public key set that checks evidence documents and audit anchors offline
        (`hub evidence verify`, `hub audit verify`); retired keys stay listed."""
        services = services_of(request)
        payload = published_keys(services)
        body = orjson.dumps(payload)
        from hub.serve.policy import audit

        await audit(services, call_of(request), 200, body)
        return Response(body, media_type="application/json")

    return router


def published_keys(services: Services) -> dict[str, Any]:
    """The current evidence and anchor keys, then every key recorded in the ops store."""
    from hub.keys_registry import known_keys

    return known_keys(services.settings, services.evidence_signer, services.audit.key)
