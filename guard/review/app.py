"""The review web app: server-rendered pages for compliance reviewers, and the public verification endpoint.

``create_app(ReviewConfig(...))`` returns a Starlette application; ``guard review serve`` runs it on uvicorn.
Every page but ``/verify``, ``/api/verify``, ``/login`` and ``/static`` needs a session; every POST from a
session carries its CSRF token. Database work runs in worker threads so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from core.errors import GuardError, InputError, LogError
from guard.provenance.record import VERDICTS
from guard.review.auth import Accounts, Session, same_token
from guard.review.decisions import DECISIONS, is_decision, record_decision
from guard.review.public import DEFAULT_PUBLIC_FIELDS, Upload, check_public_fields, prove, verify_upload
from guard.review.store import KINDS, PAGE_SIZES, ListQuery, ReviewStore
from guard.review.web import Guardrails, RateLimiter

HERE = Path(__file__).parent
SESSION_COOKIE = "guard_session"
LOGIN_COOKIE = "guard_login_csrf"
FRAMEWORK_NAMES = {"eu-ai-act-art50": "EU AI Act, Article 50", "nist-ai-100-4": "NIST AI 100-4"}
FORM_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ReviewConfig:
    """How one review server runs. ``log`` and ``keys`` as for every command (None: ``$GUARD_HOME``)."""

    log: str | None = None
    keys: Path | None = None
    policies: tuple[str, ...] = ()  # policy files besides the shipped ones, to show which rule fired
    public_fields: tuple[str, ...] = DEFAULT_PUBLIC_FIELDS
    max_upload_bytes: int = 16 * 1024 * 1024
    verify_per_minute: int = 20  # per client address
    signin_per_minute: int = 10  # per client address
    verify_workers: int = 2  # verifications at once (each decodes an image and reads its watermark)
    checkpoint_decisions: bool = True  # sign a checkpoint after each decision (needs the log's private key)
    self_test: bool = True  # compliance pages measure the image watermark (as `guard compliance` does)
    index_every_s: float = 2.0  # how often the background thread catches the review index up with the log
    password_profile: str = "RFC_9106_LOW_MEMORY"  # argon2-cffi parameters (tests use the cheapest)


class Review:
    """Everything the routes share: the log, its review tables, accounts, policies, reports and limits."""

    def __init__(self, config: ReviewConfig) -> None:
        from guard.provenance.log import open_existing
        from guard.review.reports import Reports
        from guard.review.rules import PolicyBook
        from guard.signing.keys import KeyStore

        self.config = config
        check_public_fields(config.public_fields)
        self.log = open_existing(config.log, write=True)  # decisions are appended as records
        self.store = ReviewStore(self.log)
        self.accounts = Accounts(self.store, profile=config.password_profile)
        keys = KeyStore(config.keys)
        self.keys = keys if keys.directory.is_dir() else None
        self.book = PolicyBook.load(config.policies)
        self.reports = Reports(self.log, self.keys, self_test=config.self_test)
        self.verify_limit = RateLimiter(config.verify_per_minute, burst=max(1, config.verify_per_minute // 2))
        self.signin_limit = RateLimiter(config.signin_per_minute)
        self.verify_slots = asyncio.Semaphore(config.verify_workers)
        self._stop = threading.Event()
        self._indexer: threading.Thread | None = None
        # What the list pages show beside their rows, kept by the indexing thread so a page does not ask each time.
        self.size, self.upto = self.log.size(), self.store.indexed_upto()
        self._facets: tuple[float, dict[str, list[str]]] = (float("-inf"), {})

    def checkpoint_key(self):
        if not self.config.checkpoint_decisions or self.keys is None:
            return None
        try:
            return self.keys.log_private_key()
        except GuardError:
            return None

    def start(self) -> None:
        self._indexer = threading.Thread(target=self._index_loop, daemon=True, name="review-index")
        self._indexer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._indexer is not None:
            self._indexer.join(timeout=10)
        self.log.close()

    def _index_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.upto = self.store.catch_up(chunk=5000).upto
                self.size = self.log.size()
            except Exception:  # a busy database or a lost connection: try again on the next tick
                pass
            self._stop.wait(self.config.index_every_s)

    def facets(self) -> dict[str, list[str]]:
        """The filters' choices, read again at most every ten seconds."""
        import time

        read_at, facets = self._facets
        if time.monotonic() - read_at > 10:
            self._facets = (time.monotonic(), self.store.facets())
        return self._facets[1]


# -- presentation helpers --------------------------------------------------------------------------------------


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def when(value: str | None) -> str:
    """``2025-05-01T12:03:04.123456Z`` as ``1 May 2025, 12:03:04 UTC``."""
    moment = _parse_time(value)
    if moment is None:
        return str(value or "–")
    moment = moment.astimezone(timezone.utc)
    return f"{moment.day} {moment:%b %Y, %H:%M:%S} UTC"


def ago(value: str | None) -> str:
    moment = _parse_time(value)
    if moment is None:
        return ""
    seconds = (datetime.now(timezone.utc) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = int(seconds // size)
            text = f"{n} {unit}{'s' if n != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def epoch(seconds: float | None) -> str | None:
    """A Unix time as the log writes times."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def score(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "–"


def top_score(record: dict[str, Any]) -> dict[str, Any] | None:
    scores = [s for s in record.get("scores") or [] if isinstance(s, dict)]
    best = None
    for s in scores:
        try:
            if best is None or float(s.get("value", 0)) > float(best.get("value", 0)):
                best = s
        except (TypeError, ValueError):
            continue
    return best


def _templates():
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from starlette.templating import Jinja2Templates

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, ago=ago, score=score, epoch=epoch)
    env.globals.update(top_score=top_score, KINDS=KINDS, VERDICTS=VERDICTS, DECISIONS=DECISIONS,
                       PAGE_SIZES=PAGE_SIZES, FRAMEWORK_NAMES=FRAMEWORK_NAMES, is_decision=is_decision)
    return Jinja2Templates(env=env)


# -- the application -------------------------------------------------------------------------------------------


def create_app(config: ReviewConfig):
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    review = Review(config)
    templates = _templates()

    def render(request: Request, name: str, code: int = 200, **context: Any) -> Response:
        session = getattr(request.state, "session", None)
        return templates.TemplateResponse(request, name, {"session": session, "log": review.log, **context},
                                          status_code=code)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    def client(request: Request) -> str:
        return request.client.host if request.client else "?"

    async def session_of(request: Request) -> Session | None:
        return await run_in_threadpool(review.accounts.session, request.cookies.get(SESSION_COOKIE))

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"

    def signed_in(role: str | None = None):
        """Decorator: the page needs a session (and ``role``); a POST also needs the session's CSRF token."""

        def wrap(fn):
            async def endpoint(request: Request) -> Response:
                session = await session_of(request)
                if session is None:
                    if request.method == "GET":
                        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
                    return PlainTextResponse("sign in first\n", status_code=401)
                request.state.session = session
                if role == "admin" and not session.user.is_admin:
                    return render(request, "error.html", 403, message="This page is for administrators.")
                if request.method == "POST":
                    form = await request.form(max_files=0, max_fields=20)
                    if not same_origin(request) or not same_token(form.get("csrf"), session.csrf):
                        return render(request, "error.html", 403, message="The form's CSRF token is missing or "
                                      "wrong. Reload the page and try again.")
                return await fn(request)

            return endpoint

        return wrap

    # -- sign-in ---------------------------------------------------------------------------------------------

    def safe_next(target: str | None) -> str:
        return target if target and target.startswith("/") and not target.startswith("//") and "\\" not in target \
            else "/incidents"

    async def login_page(request: Request) -> Response:
        import secrets

        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        response = render(request, "login.html", login_csrf=token, next=safe_next(request.query_params.get("next")))
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure(request))
        return response

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        target = safe_next(form.get("next"))
        if not same_origin(request) or not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            return render(request, "error.html", 403, message="The sign-in form's CSRF token is missing or wrong. "
                          "Reload the sign-in page and try again.")
        wait = review.signin_limit.take(client(request))
        if wait:
            return render(request, "login.html", 429, login_csrf=request.cookies.get(LOGIN_COOKIE), next=target,
                          error=f"Too many sign-in attempts; try again in {int(wait) + 1} s.")
        user = await run_in_threadpool(review.accounts.authenticate, str(form.get("username", ""))[:64],
                                       str(form.get("password", ""))[:1024])
        if user is None:
            return render(request, "login.html", 401, login_csrf=request.cookies.get(LOGIN_COOKIE), next=target,
                          error="Wrong user name or password.", username=str(form.get("username", ""))[:64])
        token = await run_in_threadpool(review.accounts.open_session, user)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure(request),
                            max_age=8 * 3600)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @signed_in()
    async def logout(request: Request) -> Response:
        await run_in_threadpool(review.accounts.close_session, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- the log and the incident queue -----------------------------------------------------------------------

    def list_query(request: Request, *, incidents: bool) -> tuple[ListQuery, dict[str, str]]:
        """Filters from the query string; the dict is what the form shows and the paging links keep."""
        from guard.audit.export import parse_time

        p = request.query_params
        form = {k: p.get(k, "").strip() for k in ("since", "until", "verdict", "kind", "model", "detector", "label",
                                                  "score_min", "score_max", "status", "limit")}

        def number(name: str) -> float | None:
            if not form[name]:
                return None
            try:
                return float(form[name])
            except ValueError:
                raise InputError(f"{name.replace('_', ' ')} {form[name]!r} is not a number") from None

        def cursor(name: str) -> tuple[str, int] | None:
            raw = p.get(name)
            if not raw:
                return None
            created, _, idx = raw.rpartition("~")
            if not created or not idx.isdigit():
                raise InputError(f"bad page cursor {raw!r}")
            return created, int(idx)

        label = form["label"]
        if "/" in label:  # "detector/label" as the label list offers it
            detector, label = label.split("/", 1)
            form["detector"] = form["detector"] or detector
        if form["verdict"] and form["verdict"] not in VERDICTS:
            raise InputError(f"unknown verdict {form['verdict']!r}")
        status = form["status"] if incidents else ""
        if incidents and "status" not in p:
            status = form["status"] = "pending"
        query = ListQuery(
            since=parse_time(form["since"] or None, "since"), until=parse_time(form["until"] or None, "until"),
            verdict=form["verdict"] or None, kind=form["kind"] or None, model=form["model"] or None,
            detector=form["detector"] or None, label=label or None, score_min=number("score_min"),
            score_max=number("score_max"), incident=incidents, status=status or None,
            limit=int(form["limit"]) if form["limit"].isdigit() else 50,
            before=cursor("before"), after=cursor("after"),
        )
        return query.validate(), {k: v for k, v in form.items() if v}

    def paging(path: str, form: dict[str, str], page) -> dict[str, str | None]:
        def link(key: str, c) -> str | None:
            return None if c is None else f"{path}?{urlencode({**form, key: f'{c[0]}~{c[1]}'})}"

        return {"older": link("before", page.older), "newer": link("after", page.newer),
                "newest": f"{path}?{urlencode(form)}"}

    async def list_page(request: Request, *, incidents: bool) -> Response:
        path = "/incidents" if incidents else "/log"
        try:
            query, form = list_query(request, incidents=incidents)
        except InputError as exc:
            return render(request, "list.html", 400, error=str(exc), form=dict(request.query_params), rows=[],
                          links={}, facets=await run_in_threadpool(review.facets), incidents=incidents,
                          path=path, lag=0, size=0)

        def work():  # the background thread keeps the index caught up; a page never waits for it
            return review.store.page(query), review.facets()

        page, facets = await run_in_threadpool(work)
        size, lag = review.size, max(0, review.size - review.upto)
        rules = {}
        if incidents:
            from guard.review.rules import fired_rules

            rules = {row.index: fired_rules(row.record, review.book) for row in page.rows}
        return render(request, "list.html", rows=page.rows, links=paging(path, form, page), form=form, facets=facets,
                      incidents=incidents, path=path, lag=lag, size=size, rules=rules, scanned_to=page.scanned_to,
                      budget=review.store.scan_budget)

    @signed_in()
    async def log_page(request: Request) -> Response:
        return await list_page(request, incidents=False)

    @signed_in()
    async def incidents_page(request: Request) -> Response:
        return await list_page(request, incidents=True)

    # -- one record --------------------------------------------------------------------------------------------

    def record_view(index: int) -> dict[str, Any]:
        from guard.review.rules import STAGE_RULES, fired_rules

        stored = review.log.get(index)
        record = stored.data
        fired, why = fired_rules(record, review.book)
        policy = review.book.find(record)
        thresholds = {}
        if policy is not None:
            for s in record.get("scores") or []:
                for rule in getattr(policy.stages, STAGE_RULES.get(s.get("stage"), ""), []) or []:
                    if s.get("detector") in {rule.detector} | ({rule.fallback.detector} if rule.fallback else set()):
                        if s.get("label") in rule.thresholds:
                            thresholds[(s.get("stage"), s.get("detector"), s.get("label"))] = \
                                (rule.thresholds[s["label"]], rule.action.value)
        ancestors = []
        parent = record.get("parent")
        while parent and len(ancestors) < 20:
            found = review.log.find(str(parent))
            if found is None:
                ancestors.append({"record_id": parent, "missing": True})
                break
            data = review.log.get(found).data
            ancestors.append(data)
            parent = data.get("parent")
        children = review.store.children(stored.record_id)
        return {
            "stored": stored, "record": record, "proof": prove(review.log, review.keys, stored), "fired": fired,
            "fired_note": why, "thresholds": thresholds, "ancestors": ancestors,
            "decisions": [c for c in children if is_decision(c)],
            "descendants": [c for c in children if not is_decision(c)],
            "review_status": review.store.status_of(index), "policy_known": policy is not None,
        }

    @signed_in()
    async def record_page(request: Request) -> Response:
        index = request.path_params["index"]
        try:
            view = await run_in_threadpool(record_view, index)
        except LogError as exc:
            return render(request, "error.html", 404, message=str(exc))
        return render(request, "record.html", **view)

    @signed_in()
    async def decide(request: Request) -> Response:
        index = request.path_params["index"]
        form = await request.form()
        session: Session = request.state.session

        def work() -> int:
            at = record_decision(review.log, index, str(form.get("decision", "")), str(form.get("comment", "")),
                                 reviewer=session.user.username, role=session.user.role,
                                 checkpoint_key=review.checkpoint_key())
            review.store.catch_up(limit=2000)  # the decision shows in the lists at once
            return at

        try:
            await run_in_threadpool(work)
        except InputError as exc:
            view = await run_in_threadpool(record_view, index)
            return render(request, "record.html", 400, error=str(exc), comment=str(form.get("comment", ""))[:4000],
                          **view)
        return RedirectResponse(f"/records/{index}#decisions", status_code=303)

    @signed_in()
    async def evidence(request: Request) -> Response:
        from guard.verify.evidence import build_bundle, verify_bundle

        index = request.path_params["index"]
        if review.keys is None:
            return render(request, "error.html", 409, message="This server has no key folder, so it cannot sign "
                          "the checkpoint an evidence bundle needs (start it with --keys).")

        def work() -> bytes:
            data = build_bundle(review.log, index, review.keys)
            report = verify_bundle(data)  # never hand out a bundle that does not verify
            if not report.ok:
                raise LogError(f"the bundle just built does not verify: {report.problems}")
            return data

        try:
            data = await run_in_threadpool(work)
        except GuardError as exc:
            return render(request, "error.html", 404 if isinstance(exc, LogError) else 409, message=str(exc))
        return Response(data, media_type="application/zip", headers={
            "content-disposition": f'attachment; filename="evidence-{index}.zip"'})

    # -- compliance and bias --------------------------------------------------------------------------------------

    def period(request: Request, form=None) -> tuple[Any, dict[str, str]]:
        from guard.audit.export import Filters

        source = form if form is not None else request.query_params
        values = {k: str(source.get(k, "")).strip() for k in ("since", "until")}
        return Filters.parse(since=values["since"] or None, until=values["until"] or None), \
            {k: v for k, v in values.items() if v}

    async def report_page(request: Request, name: str, template: str, **context: Any) -> Response:
        form = await request.form() if request.method == "POST" else None
        try:
            filters, shown = period(request, form)
        except InputError as exc:
            return render(request, "error.html", 400, message=str(exc))
        job = review.reports.get(name, filters, restart=request.method == "POST")
        if request.method == "POST":
            target = request.url.path + (f"?{urlencode({**shown, **context.get('keep', {})})}")
            return RedirectResponse(target, status_code=303)
        return render(request, template, job=job, period=shown, **context)

    @signed_in()
    async def compliance_page(request: Request) -> Response:
        source = await request.form() if request.method == "POST" else request.query_params
        framework = str(source.get("framework") or "eu-ai-act-art50")
        if framework not in FRAMEWORK_NAMES:
            return render(request, "error.html", 400, message=f"unknown framework {framework!r}")
        return await report_page(request, framework, "compliance.html", framework=framework,
                                 keep={"framework": framework})

    @signed_in()
    async def bias_page(request: Request) -> Response:
        return await report_page(request, "bias", "bias.html")

    # -- users (administrators) --------------------------------------------------------------------------------

    @signed_in("admin")
    async def users_page(request: Request) -> Response:
        message = error = None
        if request.method == "POST":
            form = await request.form()
            action, name = str(form.get("action", "")), str(form.get("username", ""))
            try:
                if action == "add":
                    await run_in_threadpool(review.accounts.add, name, str(form.get("password", "")),
                                            str(form.get("role", "reviewer")))
                    message = f"added {name.strip().lower()}"
                elif action in ("disable", "enable"):
                    if name == request.state.session.user.username:
                        raise InputError("you cannot disable yourself")
                    await run_in_threadpool(review.accounts.set_active, name, action == "enable")
                    message = f"{action}d {name}"
                else:
                    raise InputError(f"unknown action {action!r}")
            except InputError as exc:
                error = str(exc)
        users = await run_in_threadpool(review.accounts.list)
        return render(request, "users.html", 400 if error else 200, users=users, message=message, error=error)

    # -- public verification -------------------------------------------------------------------------------------

    async def verification(request: Request) -> dict[str, Any]:
        """Run one public verification; raises ``InputError`` (400) or ``HTTPException`` (429)."""
        wait = review.verify_limit.take(client(request))
        if wait:
            raise HTTPException(429, f"too many verifications from your address; try again in {int(wait) + 1} s",
                                headers={"retry-after": str(int(wait) + 1)})
        form = await request.form(max_files=2, max_fields=4)
        upload, envelope = form.get("file"), form.get("envelope")
        if upload is None or not hasattr(upload, "read"):
            raise InputError("choose a file to verify (form field 'file')")
        data = await upload.read(review.config.max_upload_bytes + 1)
        if len(data) > review.config.max_upload_bytes:
            raise HTTPException(413, f"the file is larger than {review.config.max_upload_bytes:,} bytes")
        if not data:
            raise InputError("the uploaded file is empty")
        envelope_data = await envelope.read() if envelope is not None and hasattr(envelope, "read") else None
        async with review.verify_slots:
            return await run_in_threadpool(
                verify_upload, Upload(upload.filename or "upload", data, envelope_data or None), log=review.log,
                keys=review.keys, public_fields=review.config.public_fields)

    async def verify_page(request: Request) -> Response:
        request.state.session = None
        if request.method == "GET":
            return render(request, "verify.html", limit=review.config.max_upload_bytes)
        try:
            report = await verification(request)
        except InputError as exc:
            return render(request, "verify.html", 400, limit=review.config.max_upload_bytes, error=str(exc))
        return render(request, "verify.html", limit=review.config.max_upload_bytes, report=report)

    async def verify_api(request: Request) -> Response:
        try:
            report = await verification(request)
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(report)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "origin": review.log.origin})

    async def home(request: Request) -> Response:
        return RedirectResponse("/incidents", status_code=303)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        request.state.session = None
        return render(request, "error.html", exc.status_code, message=exc.detail)

    async def guard_error(request: Request, exc: GuardError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=400)
        return render(request, "error.html", 400, message=str(exc))

    @asynccontextmanager
    async def lifespan(app):
        review.start()
        yield
        review.stop()

    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/log", log_page),
        Route("/incidents", incidents_page),
        Route("/records/{index:int}", record_page),
        Route("/records/{index:int}/decision", decide, methods=["POST"]),
        Route("/records/{index:int}/evidence.zip", evidence),
        Route("/compliance", compliance_page, methods=["GET", "POST"]),
        Route("/bias", bias_page, methods=["GET", "POST"]),
        Route("/users", users_page, methods=["GET", "POST"]),
        Route("/verify", verify_page, methods=["GET", "POST"]),
        Route("/api/verify", verify_api, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, GuardError: guard_error})
    app.state.review = review
    uploads = ("/verify", "/api/verify")

    def limit_for(path: str) -> int:
        return 2 * config.max_upload_bytes + FORM_LIMIT if path in uploads else FORM_LIMIT  # file + envelope

    return Guardrails(app, limit_for=limit_for)
