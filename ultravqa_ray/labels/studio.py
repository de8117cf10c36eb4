"""A small client of Label Studio's REST API, and the push / pull of rating work.

Authentication uses personal access tokens (recent Label Studio refuses legacy tokens by default):
the token is a JWT *refresh* token, exchanged at ``/api/token/refresh`` for a short-lived access
token sent as ``Authorization: Bearer``; the client refreshes again when the server answers 401.
:meth:`LabelStudio.login` gets a personal access token from an e-mail and password (the session
login of the web page), which is how the development server and the tests bootstrap accounts.

Push: find or create the project by title, set its labelling interface
(:func:`~ultravqa_ray.labels.interface.labeling_config`) and ``maximum_annotations`` (raters per
video), register the folders of local videos as local storage, and import one task per video not yet
in the project (``data``: ``video`` URL, ``video_id``, ``uri``, ``gold``). Pull: export every task
with its annotations and turn each submitted annotation into :class:`~ultravqa_ray.labels.records.Rating`
rows, the rater id being the annotator's e-mail.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.listing import ManifestEntry
from connectors.wire.dimensions import Dimension
from ultravqa_ray.labels.config import LabelConfig
from ultravqa_ray.labels.interface import COMMENT, SUB_SUFFIX, VIDEO, labeling_config
from ultravqa_ray.labels.records import Rating
from ultravqa_ray.labels.videos import local_files_url, presign_s3

log = logging.getLogger(__name__)


class StudioError(OSError):
    """Label Studio refused a request or could not be reached; the message says which and why."""


class LabelStudio:
    """REST client; ``token`` is a personal access token (JWT refresh token).

    A client made by :meth:`login` rides on the web session instead (cookies and CSRF header).
    """

    def __init__(
        self, url: str, token: str | None, *, timeout_s: float = 30.0, session: WebSession | None = None
    ):
        if not token and session is None:
            raise StudioError("a personal access token or a logged-in session is needed")
        self.url, self.token, self.timeout_s = url.rstrip("/"), token, timeout_s
        self.session = session
        self._access: str | None = None
        self._opener = urllib.request.build_opener()

    @classmethod
    def from_config(cls, config: LabelConfig) -> LabelStudio:
        token = os.environ.get(config.studio.api_key_env)
        if not token:
            raise StudioError(
                f"set {config.studio.api_key_env} to a Label Studio personal access token "
                "(Account & Settings -> Personal Access Token, or 'ultravqa-ray label server' prints one)"
            )
        return cls(config.studio.url, token, timeout_s=config.studio.timeout_s)

    @classmethod
    def login(cls, url: str, email: str, password: str, *, timeout_s: float = 30.0) -> LabelStudio:
        """A client logged in with the web form (what a rater's browser does)."""
        session = WebSession(url, timeout_s=timeout_s)
        session.login(email, password)
        return cls(url, None, timeout_s=timeout_s, session=session)

    def create_token(self) -> str:
        """Create this account's personal access token (Label Studio allows one at a time)."""
        body = self.request("POST", "/api/token/")
        if not isinstance(body, dict) or not body.get("token"):
            raise StudioError(f"{self.url}/api/token/ returned no token")
        return body["token"]

    # --- transport --------------------------------------------------------------------------

    def _refresh(self) -> str:
        body = _call(
            self._opener,
            "POST",
            f"{self.url}/api/token/refresh/",
            {"refresh": self.token},
            {},
            self.timeout_s,
        )
        if not isinstance(body, dict) or "access" not in body:
            raise StudioError(f"{self.url}: the personal access token was refused")
        self._access = body["access"]
        return self._access

    def request(self, method: str, path: str, payload: Any = None, *, params: dict | None = None) -> Any:
        path = path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        if self.session is not None:
            try:
                return self.session.request(method, path, payload)
            except _Unauthorized:
                raise StudioError(f"{method} {path}: the session is not logged in") from None
        for attempt in (0, 1):
            try:
                access = self._access or self._refresh()
            except _Unauthorized:
                raise StudioError(
                    f"{self.url}: the personal access token was refused (expired or revoked?)"
                ) from None
            try:
                return _call(self._opener, method, f"{self.url}{path}", payload,
                             {"Authorization": f"Bearer {access}"}, self.timeout_s)  # fmt: skip
            except _Unauthorized:
                self._access = None
                if attempt:
                    raise StudioError(
                        f"{method} {path}: unauthorised even with a fresh access token"
                    ) from None
        raise AssertionError("unreachable")

    # --- projects and tasks -----------------------------------------------------------------

    def whoami(self) -> dict:
        return self.request("GET", "/api/current-user/whoami")

    def find_project(self, title: str) -> dict | None:
        page = self.request("GET", "/api/projects/", params={"title": title, "page_size": 100})
        items = page.get("results", page) if isinstance(page, dict) else page
        return next((p for p in items if p.get("title") == title), None)

    def ensure_project(self, config: LabelConfig) -> dict:
        fields = {
            "title": config.studio.project,
            "label_config": labeling_config(config),
            "maximum_annotations": config.raters_per_video,
            "show_skip_button": False,
            "description": f"UltraVQA-Ray ratings: {len(config.dimensions)} dimensions, scores 1..{config.k}.",
        }
        project = self.find_project(config.studio.project)
        if project is None:
            return self.request("POST", "/api/projects/", fields)
        return self.request("PATCH", f"/api/projects/{project['id']}/", fields)

    def ensure_local_storage(self, project_id: int, folder: Path) -> None:
        have = self.request("GET", "/api/storages/localfiles/", params={"project": project_id})
        folder = folder.resolve()
        if any(Path(s.get("path", "")).resolve() == folder for s in have):
            return
        self.request("POST", "/api/storages/localfiles/",
                     {"project": project_id, "path": str(folder), "title": f"videos {folder.name}",
                      "use_blob_urls": False, "regex_filter": ""})  # fmt: skip

    def tasks(self, project_id: int) -> list[dict]:
        """Every task with its annotations (the JSON export)."""
        return self.request(
            "GET",
            f"/api/projects/{project_id}/export",
            params={"exportType": "JSON", "download_all_tasks": "true"},
        )

    def import_tasks(self, project_id: int, tasks: Sequence[dict], chunk: int = 500) -> int:
        added = 0
        for start in range(0, len(tasks), chunk):
            part = list(tasks[start : start + chunk])
            body = self.request("POST", f"/api/projects/{project_id}/import", part)
            added += int(body.get("task_count", len(part))) if isinstance(body, dict) else len(part)
        return added

    def users(self) -> dict[int, str]:
        return {
            u["id"]: u.get("email") or u.get("username") or str(u["id"])
            for u in self.request("GET", "/api/users/")
        }

    def annotate(self, task_id: int, result: list[dict]) -> dict:
        return self.request(
            "POST", f"/api/tasks/{task_id}/annotations/", {"result": result, "was_cancelled": False}
        )


class WebSession:
    """A browser-like session (cookies + CSRF) for the few pages that are not token API."""

    def __init__(self, url: str, *, timeout_s: float = 30.0):
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _csrf(self) -> str:
        return next((c.value or "" for c in self.jar if c.name == "csrftoken"), "")

    def _form(self, path: str, fields: dict[str, str]) -> str:
        self.opener.open(f"{self.url}{path}", timeout=self.timeout_s).read()  # sets the CSRF cookie
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self._csrf()}).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method="POST",
                                     headers={"Referer": f"{self.url}{path}", "X-CSRFToken": self._csrf()})  # fmt: skip
        try:
            with self.opener.open(req, timeout=self.timeout_s) as resp:
                return resp.geturl()
        except urllib.error.HTTPError as exc:
            raise StudioError(f"POST {path}: HTTP {exc.code}") from None
        except OSError as exc:
            raise StudioError(f"cannot reach Label Studio at {self.url}: {exc}") from None

    def login(self, email: str, password: str) -> None:
        landed = self._form("/user/login/", {"email": email, "password": password})
        if "/user/login" in landed:
            raise StudioError(f"Label Studio refused the login of {email}")

    def signup(self, email: str, password: str) -> None:
        landed = self._form(
            "/user/signup/", {"email": email, "password": password, "allow_newsletters": "false"}
        )
        if "/user/signup" in landed:
            raise StudioError(f"Label Studio refused the sign-up of {email}")

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        headers = {"X-CSRFToken": self._csrf(), "Referer": f"{self.url}/"}
        return _call(self.opener, method, f"{self.url}{path}", payload, headers, self.timeout_s)


class _Unauthorized(Exception):
    pass


def _call(opener, method: str, url: str, payload: Any, headers: dict, timeout_s: float) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        **headers, "Content-Type": "application/json", "Accept": "application/json"})  # fmt: skip
    try:
        with opener.open(req, timeout=timeout_s) as resp:
            text = resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:300].replace("\n", " ")
        if exc.code == 401:
            raise _Unauthorized(detail) from None
        path = urllib.parse.urlsplit(url).path
        raise StudioError(f"{method} {path}: HTTP {exc.code} {detail}") from None
    except OSError as exc:
        raise StudioError(f"cannot reach Label Studio at {url}: {exc}") from None
    return json.loads(text) if text.strip() else None


# --- push -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    project_id: int
    project_url: str
    added: int
    already: int
    gold: int

    def to_json(self) -> dict:
        return self.__dict__.copy()


def task_data(entry: ManifestEntry, config: LabelConfig, *, gold: bool = False) -> dict:
    uri = entry.uri
    if uri.startswith("s3://"):
        url = presign_s3(
            uri, expires_s=config.studio.presign_ttl_s, endpoint_override=config.s3_endpoint_override
        )
    elif uri.startswith(("http://", "https://")):
        url = uri
    else:
        url = local_files_url(uri.removeprefix("file://"), config.studio.local_files_root)
    return {VIDEO: url, "video_id": entry.video_id, "uri": uri, "gold": gold}


def push(
    client: LabelStudio,
    config: LabelConfig,
    entries: Sequence[ManifestEntry],
    gold: Sequence[ManifestEntry] = (),
) -> PushResult:
    """Create or update the project and import the videos (and gold videos) it does not have yet."""
    project = client.ensure_project(config)
    pid = int(project["id"])
    have = {t["data"].get("video_id") for t in client.tasks(pid)}
    fresh = [(e, False) for e in entries if e.video_id not in have]
    fresh += [(e, True) for e in gold if e.video_id not in have]
    ids = [e.video_id for e, _ in fresh]
    if len(set(ids)) != len(ids):
        raise ValueError("a video_id is both in the videos and in the gold videos, or listed twice")
    for folder in sorted(
        {
            Path(e.uri.removeprefix("file://")).resolve().parent
            for e, _ in fresh
            if "://" not in e.uri or e.uri.startswith("file://")
        }
    ):
        client.ensure_local_storage(pid, folder)
    added = client.import_tasks(pid, [{"data": task_data(e, config, gold=g)} for e, g in fresh])
    return PushResult(pid, f"{client.url}/projects/{pid}/data", added, len(have), sum(g for _, g in fresh))


# --- pull -------------------------------------------------------------------------------------


def annotation_ratings(task: dict, annotation: dict, rater: str, config: LabelConfig) -> list[Rating]:
    """The :class:`Rating` rows of one submitted annotation."""
    data = task.get("data", {})
    video_id, uri = str(data.get("video_id") or task["id"]), data.get("uri")
    scores: dict[Dimension, int] = {}
    labels: dict[Dimension, tuple[str, ...]] = {}
    comment = None
    names = {d.value: d for d in config.dimension_names()}
    for item in annotation.get("result", []):
        name, value = item.get("from_name", ""), item.get("value", {})
        if name in names and "rating" in value:
            scores[names[name]] = int(value["rating"])
        elif name.endswith(SUB_SUFFIX) and name[: -len(SUB_SUFFIX)] in names:
            labels[names[name[: -len(SUB_SUFFIX)]]] = tuple(value.get("choices", []))
        elif name == COMMENT:
            text = value.get("text", [])
            comment = " ".join(text) if isinstance(text, list) else str(text)
    bad = {d.value: s for d, s in scores.items() if not 1 <= s <= config.k}
    if bad:
        raise StudioError(
            f"task {task['id']} ({video_id}): rater {rater} gave ratings outside 1..{config.k}: {bad}"
        )
    return [
        Rating(video_id, rater, dim, score, labels.get(dim, ()), comment, uri)
        for dim, score in scores.items()
    ]


def pulled_ratings(client: LabelStudio, config: LabelConfig) -> tuple[list[Rating], set[str]]:
    """Every submitted rating of the project, and the ids of its gold videos."""
    project = client.find_project(config.studio.project)
    if project is None:
        raise StudioError(f"no Label Studio project titled {config.studio.project!r} at {client.url}")
    users = client.users()
    ratings: list[Rating] = []
    gold: set[str] = set()
    for task in client.tasks(int(project["id"])):
        if task.get("data", {}).get("gold"):
            gold.add(str(task["data"].get("video_id")))
        latest: dict[str, dict] = {}  # a rater who submitted twice: the later annotation counts
        for ann in sorted(task.get("annotations", []), key=lambda a: a.get("id", 0)):
            if ann.get("was_cancelled"):
                continue
            who = ann.get("completed_by")
            if isinstance(who, dict):
                rater = str(who.get("email"))
            else:
                rater = users.get(who, str(who)) if isinstance(who, int) else str(who)
            latest[rater] = ann
        for rater, ann in latest.items():
            ratings += annotation_ratings(task, ann, rater, config)
    return ratings, gold


def rating_result(config: LabelConfig, scores: dict[Dimension, int], labels: dict[Dimension, Iterable[str]] | None = None,
                  comment: str | None = None) -> list[dict]:  # fmt: skip
    """An annotation ``result`` as the labelling interface produces it (used by scripted raters)."""
    out: list[dict] = []
    for dim, score in scores.items():
        out.append({"from_name": dim.value, "to_name": VIDEO, "type": "rating", "value": {"rating": score}})
        chosen = list((labels or {}).get(dim, ()))
        if chosen:
            out.append(
                {
                    "from_name": dim.value + SUB_SUFFIX,
                    "to_name": VIDEO,
                    "type": "choices",
                    "value": {"choices": chosen},
                }
            )
    if comment:
        out.append({"from_name": COMMENT, "to_name": VIDEO, "type": "textarea", "value": {"text": [comment]}})
    return out
