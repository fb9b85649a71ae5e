"""The portal's pages and actions (FastAPI routes rendering Jinja2 templates).

Every route goes through :func:`guard`, the portal's form of the API's pipeline:

1. **authenticate**: the session cookie names a live server-side session (else: the
   sign-in page);
2. **rate limit**: the same per-principal token bucket as the API
   (``HUB_API_RATE_PER_SECOND``), keyed ``portal:<user>``;
3. **decide**: :func:`hub.portal.policy.decide` for the action and what it is about;
   a POST also needs the session's CSRF token (form field ``csrf_token`` or header
   ``X-CSRF-Token``), else 403 before anything is read;
4. **audit**: each state change and each read of personal data (rejected rows, the
   audit log) is appended to the hash-chained audit log (``action`` ``portal:<what>``,
   ``end_user`` ``portal:<user>``) and to ``ops.portal_actions`` (who, when, what, why,
   outcome); a denied attempt is recorded too.

State changes call the same ``DemandBook`` methods as the API and the CLI, with the
user's department or application, so the portal can do nothing the API would refuse.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hub.catalog import Catalog
from hub.catalog.models import DemandSpec, Resource, RowScope, Sensitivity, printable_text
from hub.demand import Demand, DemandBook, DemandError, DemandNotFoundError, DemandStatus
from hub.demand.calendar import to_local, utc_now
from hub.portal import assets
from hub.portal.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator
from hub.portal.policy import Action, PolicyDeniedError, PortalPrincipal, Subject, decide
from hub.portal.quality import WarehouseBusyError, reading
from hub.portal.quality_loop import quality_loop_nav
from hub.portal.quality_loop import scorecards as quality_loop_scorecards
from hub.portal.users import (
    Role,
    Session,
    SignInError,
    csrf_matches,
    record_action,
    session_of,
    sign_in,
    sign_out,
)
from hub.settings import Settings
from hub.storage.interface import OpsStore, open_ops

SESSION_COOKIE = "hub_session"
LOGIN_CSRF_COOKIE = "hub_login_csrf"
LANGUAGE_COOKIE = "hub_lang"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _local(moment: datetime | None, with_time: bool = True) -> str:
    if moment is None:
        return ""
    return f"{to_local(moment):%Y-%m-%d %H:%M}" if with_time else f"{to_local(moment):%Y-%m-%d}"


_env.filters["local"] = _local
_env.filters["thousands"] = lambda n: "" if n is None else f"{n:,}"


class PortalError(Exception):
    """An answer other than the page: a status, a message key and what to show."""

    def __init__(self, status: int, key: str, detail: str = "", headers: Any = None) -> None:
        super().__init__(detail or key)
        self.status, self.key, self.detail, self.headers = status, key, detail, headers


class SignInRequiredError(Exception):
    pass


@dataclass
class Context:
    """One request through the pipeline: who, in which language, on which store."""

    request: Request
    settings: Settings
    catalog: Catalog
    store: OpsStore
    t: Translator
    session: Session | None = None
    principal: PortalPrincipal | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def user(self) -> Any:
        return self.session.user if self.session else None

    @property
    def book(self) -> DemandBook:
        return DemandBook.for_settings(self.store, self.catalog, self.settings)

    def render(self, template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
        page = _env.get_template(template).render(
            t=self.t,
            lang=self.t.language,
            languages=LANGUAGES,
            user=self.user,
            csrf=self.session.csrf_token if self.session else "",
            path=self.request.url.path,
            query=str(self.request.url.query),
            nav=_nav(self),
            notices=self.notices,
            catalog=self.catalog,
            **values,
        )
        return _html(page, http_status)

    def audit(
        self,
        action: str,
        *,
        status: int = 200,
        resource: str | None = None,
        application: str | None = None,
        purpose: str | None = None,
        fields: tuple[str, ...] = (),
        rows: int = 0,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record the action in ops.portal_actions and append it to the audit chain."""
        user = self.user
        username = user.username if user else "-"
        outcome = "ok" if status < 400 else ("denied" if status in (401, 403) else "refused")
        record_action(
            self.store,
            username=username,
            role=str(user.role) if user else "-",
            action=action,
            target=target or resource,
            reason=purpose,
            outcome=outcome,
            details=json.dumps(details, ensure_ascii=False, default=str) if details else None,
        )
        from hub.serve import policy
        from hub.serve.access import Refusal

        # the API pipeline's own record of this request (its request id), as the portal's
        call = policy.call_of(self.request)
        call.action = f"portal:{action}"
        call.caller_kind = f"portal:{user.role}" if user else "portal"
        call.caller = (user.application or user.department) if user else None
        if application:
            call.caller = application
        call.end_user = f"portal:{username}"
        call.purpose = (purpose or action)[:500]
        call.resource, call.fields, call.row_count = resource, fields, rows
        try:
            policy.audit_sync(self.request.app.state.services, call, status, None)
        except Refusal as exc:
            raise PortalError(503, "error.audit", exc.detail) from exc

    def refused(self, action: str, exc: Exception, **audited: Any) -> PortalError:
        """The one way a portal action is refused by the rules it asked for (a demand
        already answered, a dispute not open ...): audited as 409 with the reason, and the
        error page that says it (``raise ctx.refused(...) from exc``)."""
        self.audit(action, status=409, details={"error": str(exc)}, **audited)
        return PortalError(409, "error.refused", _short(exc))


def _html(page: str, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(page, status_code=status)
    _secure(response)
    return response


def _secure(response: Response, csp: str = assets.PORTAL_CSP) -> Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _nav(ctx: Context) -> list[tuple[str, str]]:
    user = ctx.user
    if user is None:
        return []
    items = [("/portal/catalog", "nav.catalog")]
    if user.role is Role.application_owner:
        items.append((f"/portal/applications/{user.application}", "nav.application"))
    if user.role is Role.department:
        items.append((f"/portal/queue/{user.department}", "nav.queue"))
        items.append((f"/portal/quality/{user.department}", "nav.quality"))
    if user.role is Role.data_bureau:
        items.append(("/portal/queue", "nav.queues"))
        items.append(("/portal/quality", "nav.quality"))
    items += quality_loop_nav(user)
    if user.role in (Role.data_bureau, Role.department, Role.auditor):
        items.append(("/portal/supervision", "nav.supervision"))
    if user.role is Role.auditor:
        items.append(("/portal/audit", "nav.audit"))
    items.append(("/portal/health", "nav.health"))
    return items


def _language(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE, DEFAULT_LANGUAGE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


@contextmanager
def _context(request: Request) -> Iterator[Context]:
    settings: Settings = request.app.state.settings
    store = open_ops(settings)
    try:
        yield Context(
            request, settings, request.app.state.catalog, store, Translator(_language(request))
        )
    finally:
        store.close()


def guard(
    ctx: Context,
    action: Action,
    subject: Subject | None = None,
    *,
    csrf: str | None = None,
    post: bool = False,
) -> PortalPrincipal:
    """Authenticate, rate-limit, check CSRF (POST) and decide; raises SignInRequiredError
    or PortalError (403, 404, 429). A refusal by the policy is recorded and audited."""
    session = session_of(ctx.store, ctx.request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequiredError
    ctx.session = session
    ctx.principal = PortalPrincipal(session.user)
    from anyio.from_thread import run as run_in_loop

    limiter = ctx.request.app.state.services.limiter
    wait = run_in_loop(limiter.take, f"portal:{session.user.username}")
    if wait:
        raise PortalError(429, "error.rate", headers={"Retry-After": str(max(1, round(wait)))})
    if post:
        sent = csrf or ctx.request.headers.get("x-csrf-token")
        if not csrf_matches(session, sent):
            ctx.audit(f"csrf_refused:{action}", status=403, target=ctx.request.url.path)
            raise PortalError(403, "error.csrf")
    try:
        decide(ctx.principal, action, subject)
    except PolicyDeniedError as exc:
        ctx.audit(
            f"denied:{action}",
            status=404 if exc.hide else 403,
            target=ctx.request.url.path,
            details={"why": str(exc)},
        )
        if exc.hide:
            raise PortalError(404, "error.not_found") from exc
        raise PortalError(403, "error.forbidden", str(exc)) from exc
    return ctx.principal


def _safe_next(target: str | None) -> str:
    """Only a path of the portal: no open redirect to another site."""
    if target and target.startswith("/portal") and "//" not in target and "\\" not in target:
        return target
    return "/portal/"


def _home(user: Any) -> str:
    if user.role is Role.department:
        return f"/portal/queue/{user.department}"
    if user.role is Role.application_owner:
        return f"/portal/applications/{user.application}"
    if user.role is Role.auditor:
        return "/portal/audit"
    return "/portal/supervision"


def _resource_or_404(catalog: Catalog, code: str) -> Resource:
    if not catalog.has_resource(code):
        raise PortalError(404, "error.not_found")
    return catalog.resource(code)


def _statuses(ctx: Context) -> tuple[dict[str, Any], bool]:
    """Each resource's status (hub status), and whether the warehouse was busy."""
    from hub.status import resource_status

    try:
        with reading(ctx.settings) as warehouse:
            if warehouse is None:
                return {}, False
            found = resource_status(ctx.settings, ctx.catalog, warehouse=warehouse)
    except WarehouseBusyError:
        return {}, True
    return {s.resource: s for s in found}, False


def run_page(request: Request, handler: Any) -> Response:
    """Run ``handler(ctx)`` in a fresh context; map the pipeline's refusals to pages."""
    with _context(request) as ctx:
        try:
            answer: Response = handler(ctx)
            return answer
        except SignInRequiredError:
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/portal/login?next={target}", status_code=303)
        except WarehouseBusyError as exc:
            return _error_page(ctx, PortalError(503, "error.busy", str(exc), {"Retry-After": "30"}))
        except PortalError as exc:
            return _error_page(ctx, exc)


def portal_router() -> APIRouter:
    """Every route of the portal, under /portal (not in the OpenAPI document)."""
    router = APIRouter(prefix="/portal", include_in_schema=False)

    def page(request: Request, handler: Any) -> Response:
        """Run ``handler(ctx)``; map the pipeline's refusals to pages."""
        return run_page(request, handler)

    from hub.portal.quality_loop import quality_loop_router  # disputes, holds, agreement

    router.include_router(quality_loop_router())

    # ------------------------------------------------------------ sign-in

    @router.get("/")
    def home(request: Request) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_catalog)
            return RedirectResponse(_home(ctx.user), status_code=303)

        return page(request, handler)

    @router.get("/login")
    def login_form(request: Request, next: str | None = None) -> Response:
        with _context(request) as ctx:
            token = secrets.token_urlsafe(32)
            response = ctx.render("login.html", login_csrf=token, next=_safe_next(next), error=None)
            _cookie(response, ctx.settings, LOGIN_CSRF_COOKIE, token, max_age=3600)
            return response

    @router.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=1000)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/portal/",
    ) -> Response:
        with _context(request) as ctx:
            expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
            if not expected or not secrets.compare_digest(expected, csrf_token):
                return _error_page(ctx, PortalError(403, "error.csrf"))
            settings = ctx.settings
            try:
                session, token = sign_in(
                    ctx.store,
                    username,
                    password,
                    max_failures=settings.portal_max_failures,
                    lockout=timedelta(minutes=settings.portal_lockout_minutes),
                    session_hours=settings.portal_session_hours,
                )
            except SignInError as exc:
                name = username.strip().lower()[:64] or "-"
                record_action(
                    ctx.store,
                    username=name,
                    role="-",
                    action="sign_in",
                    target=None,
                    reason=None,
                    outcome="locked" if exc.locked_until else "refused",
                )
                # one answer for an unknown name, a wrong password and a locked account:
                # which one it was is in the action log, never in the page
                fresh = secrets.token_urlsafe(32)
                response = ctx.render(
                    "login.html",
                    http_status=401,
                    login_csrf=fresh,
                    next=_safe_next(next),
                    error=ctx.t(
                        "login.wrong",
                        failures=int(settings.portal_max_failures),
                        minutes=int(settings.portal_lockout_minutes),
                    ),
                )
                _cookie(response, settings, LOGIN_CSRF_COOKIE, fresh, max_age=3600)
                return response
            ctx.session = session
            ctx.principal = PortalPrincipal(session.user)
            ctx.audit("sign_in", purpose="sign in")
            target = _safe_next(next)
            landing = RedirectResponse(
                target if target != "/portal/" else _home(session.user), status_code=303
            )
            _cookie(
                landing,
                settings,
                SESSION_COOKIE,
                token,
                max_age=int(settings.portal_session_hours * 3600),
            )
            landing.delete_cookie(LOGIN_CSRF_COOKIE, path="/portal")
            return landing

    @router.post("/logout")
    def logout(
        request: Request, csrf_token: Annotated[str | None, Form(max_length=200)] = None
    ) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_catalog, csrf=csrf_token, post=True)
            ctx.audit("sign_out", purpose="sign out")
            sign_out(ctx.store, request.cookies.get(SESSION_COOKIE))
            response = RedirectResponse("/portal/login", status_code=303)
            response.delete_cookie(SESSION_COOKIE, path="/portal")
            return response

        return page(request, handler)

    @router.get("/lang/{language}")
    def choose_language(request: Request, language: str, next: str | None = None) -> Response:
        response = RedirectResponse(_safe_next(next), status_code=303)
        if language in LANGUAGES:
            _cookie(
                response,
                request.app.state.settings,
                LANGUAGE_COOKIE,
                language,
                max_age=365 * 86400,
                http_only=False,
            )
        return response

    # ------------------------------------------------------------ catalog

    @router.get("/catalog")
    def catalog_page(
        request: Request,
        q: Annotated[str, Query(max_length=100)] = "",
        provider: Annotated[str, Query(max_length=64)] = "",
        sharing: Annotated[str, Query(max_length=20)] = "",
    ) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_catalog)
            needle = q.strip().lower()
            found = []
            for r in sorted(ctx.catalog.resources, key=lambda r: r.catalog_no):
                text = " ".join(
                    [
                        r.code,
                        r.catalog_no,
                        r.name_zh,
                        r.name_en,
                        r.description,
                        *(f"{f.name} {f.name_zh}" for f in r.fields),
                    ]
                ).lower()
                if needle and needle not in text:
                    continue
                if provider and r.provider != provider:
                    continue
                if sharing and str(r.sharing_type) != sharing:
                    continue
                found.append(r)
            statuses, busy = _statuses(ctx)
            template = "catalog_rows.html" if request.headers.get("hx-request") else "catalog.html"
            return ctx.render(
                template,
                resources=found,
                q=q,
                provider=provider,
                sharing=sharing,
                statuses=statuses,
                busy=busy,
            )

        return page(request, handler)

    @router.get("/catalog/export")
    def catalog_export(request: Request, format: Annotated[str, Query()] = "xlsx") -> Response:
        from hub.catalog.export import export_catalog

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.export_catalog)
            if format not in ("csv", "xlsx", "dcat"):
                raise PortalError(400, "error.bad_format", format)
            statuses, _ = _statuses(ctx)
            body, media, name = export_catalog(
                ctx.catalog,
                format,
                ctx.settings.catalog_dir.parent / "expectations",
                base_url=str(request.base_url),
                statuses=statuses,
            )
            ctx.audit("export_catalog", purpose=f"catalog export {format}")
            return _download(body, media, name)

        return page(request, handler)

    @router.get("/resources/{code}")
    def resource_page(request: Request, code: str) -> Response:
        from hub.catalog.export import related_resources
        from hub.portal.charts import gate_history_chart
        from hub.portal.quality import gate_history

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_catalog)
            resource = _resource_or_404(ctx.catalog, code)
            statuses, busy = _statuses(ctx)
            runs = []
            if not busy:
                try:
                    with reading(ctx.settings) as warehouse:
                        runs = gate_history(warehouse, code)
                except WarehouseBusyError:
                    busy = True
            labels = {k: ctx.t(f"chart.{k}") for k in ("pass", "fail", "none")}
            now = utc_now()
            grants = ctx.book.grants(resource=code, active_at=now)
            related = related_resources(
                ctx.catalog, ctx.settings.catalog_dir.parent / "expectations"
            )
            mine = None
            user = ctx.user
            if user.role is Role.application_owner:
                app = ctx.catalog.application(user.application)
                mine = {
                    "application": app,
                    "demands": [
                        d for d in ctx.book.demands(application=app.code) if d.resource == code
                    ],
                }
            return ctx.render(
                "resource.html",
                resource=resource,
                provider=ctx.catalog.department(resource.provider),
                status=statuses.get(code),
                busy=busy,
                gate_chart=gate_history_chart(
                    ctx.t("resource.gate_chart"), runs, labels, rejects=False
                ),
                rejects_chart=gate_history_chart(
                    ctx.t("resource.rejects_chart"), runs, labels, rejects=True
                ),
                runs=runs,
                grants=grants,
                related=[ctx.catalog.resource(c) for c in related.get(code, [])],
                mine=mine,
                personal={Sensitivity.personal, Sensitivity.sensitive},
            )

        return page(request, handler)

    @router.post("/resources/{code}/demands")
    def submit_demand(
        request: Request,
        code: str,
        scenario: Annotated[str, Form(max_length=64)] = "",
        fields: Annotated[list[str] | None, Form()] = None,
        purpose: Annotated[str, Form(max_length=500)] = "",
        legal_basis: Annotated[str, Form(max_length=500)] = "",
        rows: Annotated[str, Form(max_length=20)] = "all",
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        def handler(ctx: Context) -> Response:
            principal = guard(
                ctx,
                Action.submit_demand,
                Subject(application=_user_application(ctx)),
                csrf=csrf_token,
                post=True,
            )
            resource = _resource_or_404(ctx.catalog, code)
            application = principal.user.application
            try:
                spec = DemandSpec(
                    scenario=scenario,
                    resource=resource.code,
                    fields=tuple(fields or ()),
                    purpose=purpose.strip(),
                    legal_basis=legal_basis.strip(),
                    rows=RowScope(rows) if rows in ("all", "applicant") else RowScope.all,
                )
                demand, created = ctx.book.submit(application or "", spec, by=principal.actor)
            except (ValueError, DemandError) as exc:
                raise ctx.refused(
                    "submit_demand",
                    exc,
                    resource=code,
                    purpose=purpose,
                ) from exc
            ctx.audit(
                "submit_demand",
                resource=code,
                purpose=purpose,
                fields=demand.fields,
                target=demand.demand_id,
                details={"created": created, "status": demand.status},
            )
            return RedirectResponse(f"/portal/demands/{demand.demand_id}", status_code=303)

        return page(request, handler)

    # ------------------------------------------------------------ supply and demand

    @router.get("/applications/{application}")
    def application_page(request: Request, application: str) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_application, Subject(application=application))
            try:
                app = ctx.catalog.application(application)
            except KeyError as exc:
                raise PortalError(404, "error.not_found") from exc
            now = utc_now()
            book = ctx.book
            return ctx.render(
                "application.html",
                application=app,
                demands=book.demands(application=application),
                grants=book.grants(application=application, active_at=now),
                ended=[g for g in book.grants(application=application) if not g.is_active(now)],
                now=now,
            )

        return page(request, handler)

    @router.get("/queue")
    def all_queues(request: Request) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_queue)
            if ctx.user.role is Role.department:
                return RedirectResponse(f"/portal/queue/{ctx.user.department}", status_code=303)
            pending = ctx.book.demands(status=DemandStatus.pending)
            return ctx.render(
                "queue.html",
                department=None,
                demands=pending,
                now=utc_now(),
                due_soon=_due_soon(ctx, pending),
            )

        return page(request, handler)

    @router.get("/queue/{department}")
    def queue_page(
        request: Request, department: str, status: Annotated[str, Query(max_length=20)] = ""
    ) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_queue, Subject(department=department))
            try:
                dept = ctx.catalog.department(department)
            except KeyError as exc:
                raise PortalError(404, "error.not_found") from exc
            chosen = DemandStatus(status) if status in {s.value for s in DemandStatus} else None
            found = ctx.book.demands(provider=department, status=chosen or DemandStatus.pending)
            return ctx.render(
                "queue.html",
                department=dept,
                demands=found,
                now=utc_now(),
                due_soon=_due_soon(ctx, found),
                status=(chosen or DemandStatus.pending).value,
            )

        return page(request, handler)

    @router.get("/demands/{demand_id}")
    def demand_page(request: Request, demand_id: str) -> Response:
        def handler(ctx: Context) -> Response:
            demand = _demand_or_404(ctx, demand_id)
            guard(ctx, Action.view_demand, Subject(demand.provider, demand.application))
            book = ctx.book
            grant = book.grant(demand.grant_id) if demand.grant_id else None
            user = ctx.user
            can_answer = (
                user.role is Role.department
                and user.department == demand.provider
                and demand.status is DemandStatus.pending
            )
            return ctx.render(
                "demand.html",
                demand=demand,
                history=book.history(demand_id),
                grant=grant,
                resource=ctx.catalog.resource(demand.resource)
                if ctx.catalog.has_resource(demand.resource)
                else None,
                can_answer=can_answer,
                default_expiry=(utc_now() + timedelta(days=ctx.settings.grant_valid_days)).date(),
            )

        return page(request, handler)

    @router.post("/demands/{demand_id}/approve")
    def approve(
        request: Request,
        demand_id: str,
        fields: Annotated[list[str] | None, Form()] = None,
        rows: Annotated[str, Form(max_length=20)] = "",
        expires: Annotated[str, Form(max_length=40)] = "",
        reason: Annotated[str, Form(max_length=1000)] = "",
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        def handler(ctx: Context) -> Response:
            demand = _demand_or_404(ctx, demand_id)
            principal = guard(
                ctx,
                Action.answer_demand,
                Subject(demand.provider, demand.application),
                csrf=csrf_token,
                post=True,
            )
            department = principal.user.department or ""
            try:
                expiry = _expiry(expires)
                grant = ctx.book.approve(
                    demand_id,
                    department=department,
                    by=principal.actor,
                    fields=fields or None,
                    rows=RowScope(rows) if rows in ("all", "applicant") else None,
                    expires_at=expiry,
                    reason=printable_text(reason.strip()) or None,
                )
            except (ValueError, DemandError) as exc:
                raise ctx.refused(
                    "approve_demand",
                    exc,
                    resource=demand.resource,
                    application=demand.application,
                    target=demand_id,
                    purpose=reason or None,
                ) from exc
            ctx.audit(
                "approve_demand",
                resource=demand.resource,
                application=demand.application,
                target=demand_id,
                purpose=reason.strip() or "approved",
                fields=grant.fields,
                details={
                    "grant_id": grant.grant_id,
                    "rows": grant.row_scope,
                    "expires_at": grant.expires_at,
                },
            )
            return RedirectResponse(f"/portal/demands/{demand_id}", status_code=303)

        return page(request, handler)

    @router.post("/demands/{demand_id}/refuse")
    def refuse(
        request: Request,
        demand_id: str,
        reason: Annotated[str, Form(max_length=1000)] = "",
        csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    ) -> Response:
        def handler(ctx: Context) -> Response:
            demand = _demand_or_404(ctx, demand_id)
            principal = guard(
                ctx,
                Action.answer_demand,
                Subject(demand.provider, demand.application),
                csrf=csrf_token,
                post=True,
            )
            try:
                ctx.book.refuse(
                    demand_id,
                    department=principal.user.department or "",
                    by=principal.actor,
                    reason=printable_text(reason),
                )
            except (ValueError, DemandError) as exc:
                raise ctx.refused(
                    "refuse_demand",
                    exc,
                    resource=demand.resource,
                    application=demand.application,
                    target=demand_id,
                    purpose=reason or None,
                ) from exc
            ctx.audit(
                "refuse_demand",
                resource=demand.resource,
                application=demand.application,
                target=demand_id,
                purpose=reason.strip(),
            )
            return RedirectResponse(f"/portal/demands/{demand_id}", status_code=303)

        return page(request, handler)

    # ------------------------------------------------------------ supervision

    @router.get("/supervision")
    def supervision(request: Request) -> Response:
        from hub.demand.report import demand_report
        from hub.portal.charts import completion_chart

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_supervision)
            statuses, busy = _statuses(ctx)
            if busy:
                raise WarehouseBusyError("the warehouse is in use by a sync or publish")
            now = utc_now()
            report = demand_report(ctx.book, list(statuses.values()), now)
            labels = {
                b: ctx.t(f"status.{b}")
                for b in ("met", "pending", "refused", "unmatched", "lapsed")
            }
            labels["target"] = ctx.t("supervision.target")
            departments = {d.code: d.name_zh for d in ctx.catalog.departments}
            scenarios = {s.code: s.name_zh for s in ctx.catalog.scenarios}
            pending = ctx.book.demands(status=DemandStatus.pending)
            return ctx.render(
                "supervision.html",
                scorecards=quality_loop_scorecards(ctx),
                report=report,
                data=report.as_dict(),
                departments=departments,
                scenarios=scenarios,
                department_chart=completion_chart(
                    ctx.t("supervision.by_department"), report.by_department, departments, labels
                ),
                scenario_chart=completion_chart(
                    ctx.t("supervision.by_scenario"), report.by_scenario, scenarios, labels
                ),
                due_soon=[d for d in pending if d.demand_id in _due_soon(ctx, pending)],
                now=now,
            )

        return page(request, handler)

    # ------------------------------------------------------------ quality

    @router.get("/quality")
    def quality_index(request: Request) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_quality)
            if ctx.user.role is Role.department:
                return RedirectResponse(f"/portal/quality/{ctx.user.department}", status_code=303)
            return ctx.render("quality_index.html", departments=ctx.catalog.departments)

        return page(request, handler)

    @router.get("/quality/{department}")
    def quality_page(
        request: Request, department: str, resource: Annotated[str, Query(max_length=64)] = ""
    ) -> Response:
        from hub.portal.quality import rejects_of

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_quality, Subject(department=department))
            try:
                dept = ctx.catalog.department(department)
            except KeyError as exc:
                raise PortalError(404, "error.not_found") from exc
            own = ctx.catalog.resources_of(department)
            chosen = next((r for r in own if r.code == resource), own[0] if own else None)
            if resource and (chosen is None or chosen.code != resource):
                raise PortalError(404, "error.not_found")
            with reading(ctx.settings) as warehouse:
                rejects = rejects_of(warehouse, ctx.settings, chosen) if chosen else None
                counts = {
                    r.code: rejects_of(warehouse, ctx.settings, r, limit=0).total for r in own
                }
            if rejects is not None:
                ctx.audit(
                    "view_rejects",
                    resource=chosen.code if chosen else None,
                    purpose="fix rejected rows at the source",
                    rows=len(rejects.rows),
                )
            return ctx.render(
                "quality.html",
                department=dept,
                resources=own,
                chosen=chosen,
                rejects=rejects,
                counts=counts,
            )

        return page(request, handler)

    @router.get("/quality/{department}/{resource}.{extension}")
    def quality_download(
        request: Request, department: str, resource: str, extension: str
    ) -> Response:
        from hub.portal.quality import MAX_REJECTS_DOWNLOADED, rejects_csv, rejects_of, rejects_xlsx

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_quality, Subject(department=department))
            found = next(
                (r for r in ctx.catalog.resources_of(department) if r.code == resource), None
            )
            if found is None or extension not in ("csv", "xlsx"):
                raise PortalError(404, "error.not_found")
            with reading(ctx.settings) as warehouse:
                rejects = rejects_of(warehouse, ctx.settings, found, limit=MAX_REJECTS_DOWNLOADED)
            ctx.audit(
                "download_rejects",
                resource=resource,
                purpose=f"rejects as {extension}",
                rows=len(rejects.rows),
            )
            if extension == "csv":
                return _download(
                    rejects_csv(rejects), "text/csv; charset=utf-8", f"rejects-{resource}.csv"
                )
            return _download(
                rejects_xlsx(rejects),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                f"rejects-{resource}.xlsx",
            )

        return page(request, handler)

    # ------------------------------------------------------------ audit

    @router.get("/audit")
    def audit_page(
        request: Request,
        application: Annotated[str, Query(max_length=64)] = "",
        end_user: Annotated[str, Query(max_length=200)] = "",
        purpose: Annotated[str, Query(max_length=200)] = "",
        resource: Annotated[str, Query(max_length=64)] = "",
        since: Annotated[str, Query(max_length=40)] = "",
        until: Annotated[str, Query(max_length=40)] = "",
        page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> Response:
        from hub.audit import audit_url
        from hub.portal.audit_view import AuditFilter, search_audit

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_audit)
            try:
                where = AuditFilter(
                    application=application.strip() or None,
                    end_user=end_user.strip() or None,
                    purpose=purpose.strip() or None,
                    resource=resource.strip() or None,
                    since=_moment(since),
                    until=_moment(until, end_of_day=True),
                )
            except ValueError as exc:
                raise PortalError(400, "error.bad_time", str(exc)) from exc
            size = 50
            records, total = search_audit(
                audit_url(ctx.settings), where, limit=size, offset=(page_no - 1) * size
            )
            ctx.audit(
                "view_audit",
                purpose="audit search",
                rows=len(records),
                details={k: v for k, v in where.__dict__.items() if v},
            )
            return ctx.render(
                "audit.html",
                records=records,
                total=total,
                page_no=page_no,
                size=size,
                filters={
                    "application": application,
                    "end_user": end_user,
                    "purpose": purpose,
                    "resource": resource,
                    "since": since,
                    "until": until,
                },
            )

        return page(request, handler)

    @router.post("/audit/verify")
    def audit_verify(
        request: Request, csrf_token: Annotated[str | None, Form(max_length=200)] = None
    ) -> Response:
        from hub.audit import AuditError
        from hub.portal.audit_view import verify_whole_chain

        def handler(ctx: Context) -> Response:
            guard(ctx, Action.verify_chain, csrf=csrf_token, post=True)
            problem: str | None = None
            try:
                report = verify_whole_chain(ctx.settings)
            except AuditError as exc:
                report, problem = None, str(exc)
            ctx.audit(
                "verify_chain",
                purpose="verify the audit chain",
                status=200 if report is not None and report.ok else 409,
                details=report.as_dict() if report else {"error": problem},
            )
            template = "verify_result.html" if request.headers.get("hx-request") else "verify.html"
            return ctx.render(template, report=report, problem=problem)

        return page(request, handler)

    # ------------------------------------------------------------ health and docs

    @router.get("/health")
    def health_page(request: Request) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_health)
            statuses, busy = _statuses(ctx)
            if busy:
                raise WarehouseBusyError("the warehouse is in use by a sync or publish")
            home = ctx.settings.home
            return ctx.render(
                "health.html",
                statuses=[
                    statuses[r.code]
                    for r in sorted(ctx.catalog.resources, key=lambda r: (r.provider, r.code))
                    if r.code in statuses
                ],
                airflow_url=ctx.settings.airflow_url,
                has_gx=(home / "gate" / "docs" / "index.html").exists(),
                has_dbt=(home / "dbt" / "target" / "index.html").exists(),
            )

        return page(request, handler)

    @router.get("/docs/gx/{path:path}")
    def gx_docs(request: Request, path: str) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_docs)
            return _docs(
                ctx.settings.home / "gate" / "docs", path or "index.html", assets.offline_gx_page
            )

        return page(request, handler)

    @router.get("/docs/dbt/{path:path}")
    def dbt_docs(request: Request, path: str) -> Response:
        def handler(ctx: Context) -> Response:
            guard(ctx, Action.view_docs)
            name = path or "index.html"
            if name not in ("index.html", "manifest.json", "catalog.json"):
                raise PortalError(404, "error.not_found")
            return _docs(ctx.settings.home / "dbt" / "target", name, assets.offline_dbt_page)

        return page(request, handler)

    @router.get("/vendor/{path:path}")
    def vendor(path: str) -> Response:
        found = assets.vendor_file(path)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(
            found,
            media_type=assets.ASSET_TYPES[found.suffix],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        found = assets.docs_file(STATIC, name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(
            found,
            media_type=assets.ASSET_TYPES[found.suffix],
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return router


# ---------------------------------------------------------------- helpers


def _user_application(ctx: Context) -> str | None:
    session = session_of(ctx.store, ctx.request.cookies.get(SESSION_COOKIE))
    return session.user.application if session else None


def _demand_or_404(ctx: Context, demand_id: str) -> Demand:
    if len(demand_id) > 64:
        raise PortalError(404, "error.not_found")
    try:
        return ctx.book.demand(demand_id)
    except DemandNotFoundError as exc:
        # the same answer as someone else's demand: do not confirm what exists
        if session_of(ctx.store, ctx.request.cookies.get(SESSION_COOKIE)) is None:
            raise SignInRequiredError from exc
        raise PortalError(404, "error.not_found") from exc


def _due_soon(ctx: Context, demands: list[Demand]) -> set[str]:
    """Pending demands due within HUB_REMINDER_DUE_WORKING_DAYS working days (or past)."""
    from hub.portal.reminders import threshold_of

    book, now = ctx.book, utc_now()
    days = ctx.settings.reminder_due_working_days
    return {d.demand_id for d in demands if threshold_of(book, d, now, days) is not None}


def _expiry(text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=None)
    except ValueError as exc:
        raise DemandError(f"expiry {text!r}: expected a date such as 2027-06-30") from exc


def _moment(text: str, *, end_of_day: bool = False) -> datetime | None:
    """A date or date-time typed in the filter (local time), as UTC-aware."""
    from hub.demand.calendar import LOCAL_TZ

    if not text.strip():
        return None
    value = datetime.fromisoformat(text.strip())
    if end_of_day and len(text.strip()) == 10:
        value += timedelta(days=1)
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value.astimezone(UTC)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:400]


def _download(body: bytes, media: str, name: str) -> Response:
    response = Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
    return _secure(response)


def _docs(root: Path, name: str, rewrite: Any) -> Response:
    found = assets.docs_file(root, name)
    if found is None:
        raise PortalError(404, "error.not_found")
    if found.suffix == ".html":
        page = rewrite(found.read_text(encoding="utf-8"))
        return _secure(HTMLResponse(page), assets.DOCS_CSP)
    return _secure(
        FileResponse(found, media_type=assets.ASSET_TYPES[found.suffix]), assets.DOCS_CSP
    )


def _cookie(
    response: Response,
    settings: Settings,
    name: str,
    value: str,
    *,
    max_age: int,
    http_only: bool = True,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/portal",
        httponly=http_only,
        samesite="strict",
        secure=settings.portal_cookie_secure,
    )


def _error_page(ctx: Context, exc: PortalError) -> Response:
    response = ctx.render("error.html", http_status=exc.status, key=exc.key, detail=exc.detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response
