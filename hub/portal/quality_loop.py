"""The portal's pages of the quality loop (issue 15): disputes (疑义), held publishes, the
cross-source agreement report; the scorecard is on the supervision page.

Every route goes through :func:`hub.portal.views.guard` (authenticate, rate limit, CSRF
on POST, decide) and changes state only through the functions the API and the command
line call (:class:`hub.quality.disputes.DisputeBook`, :func:`hub.quality.impact.decide`),
with the user's own department or application: a dispute is filed only under one grant
of the user's application covering the record's key and the field (the API's
``access.select``), on a record the published version holds; an applicant-only grant
needs the applicant's assertion, which a portal user cannot give, so it is refused as
the API would refuse it. Each action is audited (``portal:<action>``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub.portal.users import Role

if TYPE_CHECKING:
    from hub.portal.views import Context


def quality_loop_nav(user: Any) -> list[tuple[str, str]]:
    """The navigation entries of these pages for ``user``."""
    items = []
    if user.role in (Role.department, Role.data_bureau, Role.application_owner):
        items.append(("/portal/disputes", "nav.disputes"))
    if user.role in (Role.department, Role.data_bureau):
        items.append(("/portal/holds", "nav.holds"))
        items.append(("/portal/agreement", "nav.agreement"))
    return items


def _scope(ctx: Context) -> dict[str, str | None]:
    user = ctx.user
    if user.role is Role.department:
        return {"provider": user.department}
    if user.role is Role.application_owner:
        return {"application": user.application}
    return {}


def scorecards(ctx: Context) -> list[Any]:
    """The department scorecards for the supervision page ([] while the warehouse is busy
    or absent); a department user sees its own."""
    from hub.demand.calendar import utc_now
    from hub.portal.quality import WarehouseBusyError, reading
    from hub.quality.scorecard import compute

    department = ctx.user.department if ctx.user.role is Role.department else None
    try:
        with reading(ctx.settings) as warehouse:
            if warehouse is None:
                return []
            return compute(warehouse, ctx.store, ctx.catalog, utc_now(), department=department)
    except WarehouseBusyError:
        return []


def quality_loop_router() -> APIRouter:
    from hub.demand.calendar import utc_now
    from hub.portal.policy import Action, Subject
    from hub.portal.views import PortalError, guard, run_page
    from hub.quality.disputes import FLAGGED, DisputeBook, DisputeError, DisputeNotFoundError

    router = APIRouter()

    def book(ctx: Context) -> DisputeBook:
        return DisputeBook(ctx.store, ctx.catalog)

    def dispute_or_404(ctx: Context, dispute_id: str) -> Any:
        try:
            return book(ctx).get(dispute_id)
        except DisputeNotFoundError as exc:
            raise PortalError(404, "error.not_found") from exc

    # ------------------------------------------------------------ disputes

    @router.get("/disputes")
    def dispute_queue(
        request: Request, status: Annotated[str, Query(max_length=20)] = "flagged"
    ) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_disputes)
            statuses = FLAGGED if status == "flagged" else (status,) if status != "all" else ()
            found = book(ctx).disputes(statuses=statuses, **_scope(ctx))
            return ctx.render("disputes.html", disputes=found, now=utc_now(), status=status)

        return run_page(request, handler)

    @router.get("/disputes/new")
    def dispute_form(request: Request, resource: Annotated[str, Query(max_length=64)]) -> Response:
        def handler(ctx: Context) -> Response:
            # the user's own application only: the grant looked up is always its own
            user = guard(ctx, Action.file_dispute).user
            if not ctx.catalog.has_resource(resource):
                raise PortalError(404, "error.not_found")
            chosen = ctx.catalog.resource(resource)
            views = ctx.request.app.state.services.access.active(user.application, resource)
            granted = sorted({f for v in views for f in v.fields} - set(chosen.primary_key))
            return ctx.render("dispute_form.html", resource=chosen, fields=granted)

        return run_page(request, handler)

    @router.post("/disputes")
    def file_dispute(
        request: Request,
        resource: Annotated[str, Form(max_length=64)],
        field: Annotated[str, Form(max_length=64)],
        value: Annotated[str, Form(max_length=2000)],
        evidence: Annotated[str, Form(max_length=2000)],
        key: Annotated[list[str] | None, Form(description="The key values, in key order.")] = None,
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        def handler(ctx: Context) -> Response:
            from anyio.from_thread import run as run_in_loop

            from hub.quality.disputes import FILED, notify, record_key
            from hub.serve.access import Refusal
            from hub.serve.records import filter_value
            from hub.serve.sources import Condition

            principal = guard(ctx, Action.file_dispute, csrf=csrf_token, post=True)
            application = principal.user.application or ""
            if not ctx.catalog.has_resource(resource):
                raise PortalError(404, "error.not_found")
            chosen = ctx.catalog.resource(resource)
            given = [v.strip()[:200] for v in (key or [])][: len(chosen.primary_key)]
            record = dict(zip(chosen.primary_key, given, strict=False))
            services = ctx.request.app.state.services
            try:
                view = services.access.select(
                    application, resource, asked={field, *chosen.primary_key}
                )
                if str(view.row_scope) != "all":
                    raise Refusal(
                        403,
                        "forbidden",
                        f"grant {view.grant_id} covers applicants' records only: file it over "
                        "the API with the applicant's assertion",
                    )
                values = record_key(chosen, record)
                conditions = [
                    Condition(n, "=", filter_value(chosen, n, v))
                    for n, v in zip(chosen.primary_key, values, strict=True)
                ]
                info = run_in_loop(services.source.current, chosen)
                if info is None:
                    raise PortalError(404, "error.not_found")
                columns = list(
                    dict.fromkeys(
                        [*chosen.primary_key, field, *(chosen.subject_fields or chosen.primary_key)]
                    )
                )
                rows = run_in_loop(
                    services.source.lookup, chosen, info, columns, conditions, [], None, 1
                )
                published = rows[0] if rows else None
                if published is not None:
                    record = {k: str(published[k]) for k in chosen.primary_key}
                now = utc_now()
                dispute, created = book(ctx).file(
                    chosen,
                    record,
                    field,
                    proposed_value=value,
                    evidence=evidence,
                    by=principal.actor,
                    now=now,
                    published=published,
                    version=info.version,
                    application=application,
                    grant_id=view.grant_id,
                )
                if created:
                    notify(ctx.store, ctx.settings, ctx.catalog, dispute, FILED, now)
                services.disputes.forget()  # this process's readers see the flag at once
            except Refusal as exc:
                ctx.audit(
                    "file_dispute",
                    status=exc.status,
                    resource=resource,
                    application=application,
                    details={"error": exc.detail},
                )
                raise PortalError(exc.status, "error.forbidden", exc.detail) from exc
            except DisputeNotFoundError as exc:
                raise PortalError(404, "error.refused", str(exc)) from exc
            except DisputeError as exc:
                raise ctx.refused(
                    "file_dispute",
                    exc,
                    resource=resource,
                    application=application,
                ) from exc
            ctx.audit(
                "file_dispute",
                resource=resource,
                application=application,
                target=dispute.dispute_id,
                purpose=evidence[:500],
                fields=(field,),
                rows=1,
            )
            return RedirectResponse(f"/portal/disputes/{dispute.dispute_id}", status_code=303)

        return run_page(request, handler)

    @router.get("/disputes/{dispute_id}")
    def dispute_page(request: Request, dispute_id: str) -> Response:
        def handler(ctx: Context) -> Response:
            user = guard(ctx, Action.view_disputes).user
            dispute = dispute_or_404(ctx, dispute_id)
            mine = (
                user.role is Role.data_bureau
                or (user.role is Role.department and user.department == dispute.provider)
                or (user.role is Role.application_owner and user.application == dispute.application)
            )
            if not mine:  # do not confirm that someone else's dispute exists
                raise PortalError(404, "error.not_found")
            can_answer = (
                user.role is Role.department
                and user.department == dispute.provider
                and dispute.status == "open"
            )
            return ctx.render(
                "dispute.html",
                dispute=dispute,
                resource=ctx.catalog.resource(dispute.resource),
                history=book(ctx).events(dispute_id),
                can_answer=can_answer,
                now=utc_now(),
            )

        return run_page(request, handler)

    def answer(
        request: Request, dispute_id: str, reason: str, csrf: str | None, *, confirm: bool
    ) -> Response:
        def handler(ctx: Context) -> Response:
            dispute = dispute_or_404(ctx, dispute_id)
            principal = guard(
                ctx,
                Action.answer_dispute,
                Subject(department=dispute.provider),
                csrf=csrf,
                post=True,
            )
            what = "confirm_dispute" if confirm else "reject_dispute"
            try:
                book(ctx).answer(
                    dispute_id,
                    confirm=confirm,
                    by=principal.actor,
                    reason=reason,
                    department=principal.user.department,
                    now=utc_now(),
                )
                ctx.request.app.state.services.disputes.forget()
            except DisputeError as exc:
                raise ctx.refused(
                    what,
                    exc,
                    resource=dispute.resource,
                    target=dispute_id,
                ) from exc
            ctx.audit(
                what,
                resource=dispute.resource,
                target=dispute_id,
                purpose=reason or what,
                fields=(dispute.field,),
            )
            return RedirectResponse(f"/portal/disputes/{dispute_id}", status_code=303)

        return run_page(request, handler)

    @router.post("/disputes/{dispute_id}/confirm")
    def confirm_dispute(
        request: Request,
        dispute_id: str,
        reason: Annotated[str, Form(max_length=2000)] = "",
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        return answer(request, dispute_id, reason, csrf_token, confirm=True)

    @router.post("/disputes/{dispute_id}/reject")
    def reject_dispute(
        request: Request,
        dispute_id: str,
        reason: Annotated[str, Form(max_length=2000)] = "",
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        return answer(request, dispute_id, reason, csrf_token, confirm=False)

    # ------------------------------------------------------------ held publishes

    @router.get("/holds")
    def holds_page(request: Request) -> Response:
        from hub.quality.impact import holds

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_holds)
            user = ctx.user
            provider = user.department if user.role is Role.department else None
            return ctx.render("holds.html", holds=holds(ctx.store, provider=provider))

        return run_page(request, handler)

    def decide_hold(
        request: Request, gate_run_id: str, reason: str, csrf: str | None, *, confirm: bool
    ) -> Response:
        from hub.quality.impact import HoldError, decide, hold_of

        def handler(ctx: Context) -> Response:
            hold = hold_of(ctx.store, gate_run_id[:200])
            if hold is None:
                raise PortalError(404, "error.not_found")
            principal = guard(
                ctx, Action.decide_hold, Subject(department=hold.provider), csrf=csrf, post=True
            )
            what = "confirm_publish" if confirm else "refuse_publish"
            try:
                decide(
                    ctx.store,
                    hold.resource,
                    gate_run_id,
                    confirm=confirm,
                    by=principal.actor,
                    reason=reason,
                    department=principal.user.department,
                    latest_gate_run=None,
                    now=utc_now(),
                )
            except HoldError as exc:
                raise ctx.refused(
                    what,
                    exc,
                    resource=hold.resource,
                    target=gate_run_id,
                ) from exc
            ctx.audit(what, resource=hold.resource, target=gate_run_id, purpose=reason)
            if confirm:
                ctx.notices.append(ctx.t("holds.confirmed_note"))
            return RedirectResponse("/portal/holds", status_code=303)

        return run_page(request, handler)

    @router.post("/holds/{gate_run_id}/confirm")
    def confirm_hold(
        request: Request,
        gate_run_id: str,
        reason: Annotated[str, Form(max_length=2000)] = "",
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        return decide_hold(request, gate_run_id, reason, csrf_token, confirm=True)

    @router.post("/holds/{gate_run_id}/refuse")
    def refuse_hold(
        request: Request,
        gate_run_id: str,
        reason: Annotated[str, Form(max_length=2000)] = "",
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        return decide_hold(request, gate_run_id, reason, csrf_token, confirm=False)

    # ------------------------------------------------------------ agreement

    @router.get("/agreement")
    def agreement_page(request: Request) -> Response:
        from hub.portal.quality import reading
        from hub.quality.agreement import by_department_pair, latest_results

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_agreement)
            with reading(ctx.settings) as warehouse:
                results = latest_results(warehouse) if warehouse is not None else []
            user = ctx.user
            if user.role is Role.department:  # both sides of a pair see it
                results = [
                    r
                    for r in results
                    if user.department in (r.department, r.authoritative_department)
                ]
            return ctx.render("agreement.html", results=results, pairs=by_department_pair(results))

        return run_page(request, handler)

    return router
