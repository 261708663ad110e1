"""A small Hugging Face Hub-compatible HTTP server for tests (standard library only).

The real ``huggingface_hub`` client (2.4) talks to it for uploads -- ``create_repo``,
``upload_folder`` (the hf_xet pipelined path included), ``upload_file``,
``create_commit`` -- and for downloads -- ``repo_info``, ``list_repo_tree``,
``list_repo_refs``, ``hf_hub_download``, ``snapshot_download``. Every repository is a
plain git repository at ``<root>/<models|datasets|spaces>/<namespace>/<name>`` with its
files committed on branch ``main``, which is exactly the layout ``olah`` serves as a
local mirror, so an upload here can be downloaded back through olah.

Endpoints (``{t}`` is ``models``/``datasets``/``spaces``, ``{rev}`` is URL-quoted):
    POST /api/repos/create                      -> 200 {url}, 409 when it exists
    POST /api/validate-yaml                     -> README front matter check
    POST /api/{t}/{ns}/{name}/preupload/{rev}   -> "regular" upload mode for every file
    POST /api/{t}/{ns}/{name}/commit/{rev}      -> NDJSON commit (base64 files, deletions)
    GET  /api/{t}/{ns}/{name}[/revision/{rev}]  -> repo info (sha, siblings)
    GET  /api/{t}/{ns}/{name}/tree/{rev}[/path] -> tree listing (?recursive=true)
    GET  /api/{t}/{ns}/{name}/refs              -> branches and tags
    HEAD/GET /[datasets/|spaces/]{ns}/{name}/resolve/{rev}/{path}
                                                -> file, with ETag and X-Repo-Commit

Anything else is answered 404/405, malformed requests 400, LFS/Xet uploads and PRs
are refused (400): a client that drifts from this protocol fails loudly. Errors carry
the ``X-Error-Code`` the client maps to RepositoryNotFoundError, RevisionNotFoundError
and EntryNotFoundError. When started with a token, every request needs
``Authorization: Bearer <token>``, else 401 (client raises HfHubHTTPError).

What the server received is kept for inspection: ``commits`` (CommitRecord list),
``requests`` ((method, path, status) list), ``errors`` (internal errors; should stay
empty), ``read_file()``; the working tree of ``main`` is kept checked out on disk too.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_LITERAL_PATHSPECS": "1",
            "GIT_AUTHOR_NAME": "hub-test", "GIT_AUTHOR_EMAIL": "hub@test.invalid",
            "GIT_COMMITTER_NAME": "hub-test", "GIT_COMMITTER_EMAIL": "hub@test.invalid"}
_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
_BAD_AUTH = "Invalid credentials in Authorization header"


class HubError(Exception):
    """An HTTP error answer: status, message, and the Hub's ``X-Error-Code`` if any."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass
class CommitRecord:
    """One commit received through ``/commit``."""

    repo_id: str
    repo_type: str
    revision: str
    message: str
    description: str
    oid: str
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _check_path(path: str, single: bool = False) -> str:
    """``path`` if it is a safe relative path (one segment if ``single``), else 400."""
    parts = path.split("/")
    if "\\" in path or (single and len(parts) > 1) or any(p in ("", ".", "..", ".git") for p in parts):
        raise HubError(400, f"Invalid name or path: {path!r}")
    return path


class GitRepo:
    """Thin wrapper over the ``git`` command line for one repository."""

    def __init__(self, path: Path):
        self.path = path

    def git(self, *args: str, data: bytes | None = None, env: dict | None = None) -> bytes:
        proc = subprocess.run(["git", *args], cwd=self.path, input=data, capture_output=True, timeout=30,
                              env={**os.environ, **_GIT_ENV, **(env or {})})
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout

    def resolve(self, rev: str) -> str | None:
        """Commit sha of a branch, tag or (abbreviated) sha; None if unknown."""
        if not rev or rev.startswith("-"):
            return None
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
        except RuntimeError:
            return None

    def ls(self, sha: str, path: str = "", recursive: bool = False, children: bool = False) -> list[dict]:
        """Tree entries as the Hub lists them ("file"/"directory", oid, size, path)."""
        args = ["ls-tree", "-z", "-l"] + (["-r", "-t"] if recursive else []) + [sha]
        spec = path.rstrip("/") + "/" if children and path else path
        out = self.git(*args, *(["--", spec] if spec else []))
        entries = []
        for rec in filter(None, out.split(b"\0")):
            meta, name = rec.split(b"\t", 1)
            _mode, kind, oid, size = meta.decode().split()
            is_file = kind == "blob"
            entries.append({"type": "file" if is_file else "directory", "oid": oid,
                            "size": int(size) if is_file else 0, "path": name.decode()})
        return entries

    def entry(self, sha: str, path: str) -> dict | None:
        found = [e for e in self.ls(sha, path) if e["path"] == path]
        return found[0] if found else None

    def commit(self, branch: str, message: str, files: dict[str, bytes], deletions: list[str]) -> str:
        """Commit on top of ``branch`` with plumbing (temporary index), then move the branch."""
        parent = self.git("rev-parse", f"refs/heads/{branch}").decode().strip()
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            self.git("read-tree", parent, env=env)
            lines = [f"0 {'0' * 40}\t{p}\n" for p in deletions]
            for path, data in files.items():
                oid = self.git("hash-object", "-w", "--stdin", data=data).decode().strip()
                lines.append(f"100644 {oid}\t{path}\n")
            self.git("update-index", "--index-info", data="".join(lines).encode(), env=env)
            tree = self.git("write-tree", env=env).decode().strip()
        sha = self.git("commit-tree", tree, "-p", parent, "-m", message).decode().strip()
        self.git("update-ref", f"refs/heads/{branch}", sha, parent)
        if self.git("symbolic-ref", "HEAD").decode().strip() == f"refs/heads/{branch}":
            self.git("reset", "-q", "--hard")  # keep the checked-out files in sync, for humans and tests
        return sha


class HubServer:
    """The server: ``start()``/``stop()`` or use as a context manager; ``endpoint`` is its URL."""

    def __init__(self, root: str | Path, token: str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.root, self.token = Path(root), token
        self.commits: list[CommitRecord] = []
        self.requests: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.hub = self
        self._thread: threading.Thread | None = None
        self.endpoint = f"http://{host}:{self._httpd.server_address[1]}"

    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hub-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        for sock in list(self._httpd.connections):  # end keep-alive connections too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()

    def repo(self, repo_id: str, repo_type: str = "model") -> GitRepo:
        return GitRepo(self.root / f"{repo_type}s" / repo_id)

    def read_file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        """Bytes of ``path`` as committed at ``revision``."""
        return self.repo(repo_id, repo_type).git("cat-file", "blob", f"{revision}:{path}")

    # ---- operations behind the endpoints -------------------------------------------------

    def create_repo(self, payload: dict) -> tuple[int, dict]:
        name, org, kind = payload.get("name"), payload.get("organization"), payload.get("type") or "model"
        if not isinstance(name, str) or not isinstance(org, str) or f"{kind}s" not in REPO_TYPES:
            raise HubError(400, "create needs 'name', 'organization' (a namespace) and a known 'type'")
        repo_id = f"{_check_path(org, True)}/{_check_path(name, True)}"
        prefix = "" if kind == "model" else f"{kind}s/"
        body = {"url": f"{self.endpoint}/{prefix}{repo_id}", "name": repo_id, "id": repo_id}
        repo = self.repo(repo_id, kind)
        with self._lock:
            if (repo.path / ".git").exists():
                return 409, {"error": f"You already created this {kind} repo", **body}
            repo.path.mkdir(parents=True)
            repo.git("init", "-q", "-b", "main")
            repo.git("commit", "-q", "--allow-empty", "-m", "initial commit")
        return 200, body

    def open_repo(self, kind: str, ns: str, name: str) -> tuple[GitRepo, str]:
        repo_id = f"{_check_path(unquote(ns), True)}/{_check_path(unquote(name), True)}"
        repo = self.repo(repo_id, REPO_TYPES[kind])
        if not (repo.path / ".git").is_dir():
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo, repo_id

    def head_of(self, repo: GitRepo, rev: str) -> str:
        sha = repo.resolve(rev)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return sha

    def commit(self, repo: GitRepo, repo_id: str, kind: str, rev: str, body: bytes, query: dict) -> dict:
        if query.get("create_pr"):
            raise HubError(400, "create_pr is not supported by this test server")
        header, files, deletions, folders = None, {}, [], []
        try:
            for number, line in enumerate(filter(bytes.strip, body.splitlines())):
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if number == 0 and key == "header" and value["summary"]:
                    header = value
                elif number == 0:
                    raise HubError(400, "The commit payload must start with a header holding a summary")
                elif key == "file" and value["encoding"] == "base64":
                    files[_check_path(value["path"])] = base64.b64decode(value["content"], validate=True)
                elif key == "deletedFile":
                    deletions.append(_check_path(value["path"]))
                elif key == "deletedFolder":
                    folders.append(_check_path(value["path"].rstrip("/")))
                else:
                    raise HubError(400, f"Unsupported commit operation {key!r} (only base64 regular files)")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise HubError(400, f"Invalid NDJSON commit payload: {err!r}") from None
        if header is None:
            raise HubError(400, "Empty commit payload")
        with self._lock:
            parent = self.head_of(repo, f"refs/heads/{rev}")  # commits go to branches only
            if header.get("parentCommit") not in (None, parent):
                raise HubError(412, f"A commit has happened since. Parent commit is now {parent}")
            existing = {e["path"] for e in repo.ls(parent, recursive=True) if e["type"] == "file"}
            for path in deletions:
                if path not in existing:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            for folder in folders:
                inside = [p for p in existing if p.startswith(folder + "/")]
                if not inside:
                    raise HubError(404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound")
                deletions += inside
            message = header["summary"] + (f"\n\n{header['description']}" if header.get("description") else "")
            try:
                sha = repo.commit(rev, message, files, deletions)
            except RuntimeError as err:  # e.g. "a/b" added where "a" is a file: the client's fault
                raise HubError(400, f"Commit rejected: {err}".splitlines()[0]) from None
            self.commits.append(CommitRecord(repo_id, REPO_TYPES[kind], rev, header["summary"],
                                             header.get("description", ""), sha, list(files), deletions))
        prefix = "" if kind == "models" else f"{kind}/"
        return {"success": True, "commitOid": sha, "commitUrl": f"{self.endpoint}/{prefix}{repo_id}/commit/{sha}",
                "pullRequestUrl": None}

    def info(self, repo: GitRepo, repo_id: str, kind: str, sha: str) -> dict:
        stamp = int(repo.git("log", "-1", "--format=%ct", sha).decode().strip())
        date = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        files = [e["path"] for e in repo.ls(sha, recursive=True) if e["type"] == "file"]
        info = {"_id": sha, "id": repo_id, "author": repo_id.split("/")[0], "sha": sha, "lastModified": date,
                "private": False, "disabled": False, "gated": False, "tags": [], "downloads": 0, "likes": 0,
                "siblings": [{"rfilename": f} for f in files]}
        return {**info, "modelId": repo_id} if kind == "models" else info

    def refs(self, repo: GitRepo, query: dict) -> dict:
        out = repo.git("for-each-ref", "--format=%(refname) %(objectname) %(*objectname)", "refs/heads", "refs/tags")
        refs: dict = {"branches": [], "tags": [], "converts": []}
        for line in out.decode().splitlines():
            ref, oid, *peeled = line.split()
            group = "branches" if ref.startswith("refs/heads/") else "tags"
            refs[group].append({"name": ref.split("/", 2)[2], "ref": ref, "targetCommit": (peeled or [oid])[0]})
        if query.get("include_prs"):
            refs["pullRequests"] = []
        return refs


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that remembers its open connections, to close them at stop."""

    daemon_threads = True
    hub: HubServer

    def __init__(self, *args):
        self.connections: set[socket.socket] = set()
        super().__init__(*args)

    def process_request(self, request, client_address):
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        self.connections.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the real Hub; every answer has a Content-Length
    timeout = 10  # a stuck or idle client connection is dropped after this many seconds

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, *args) -> None:  # keep pytest output clean; see HubServer.requests
        pass

    def _dispatch(self) -> None:
        hub = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._read_body()
            if hub.token is not None and self.headers.get("Authorization") != f"Bearer {hub.token}":
                raise HubError(401, _BAD_AUTH)
            status, payload, headers = self._route(hub, url.path, query, body)
        except HubError as err:
            status, payload, headers = err.status, {"error": err.message}, dict(err.headers)
            headers["X-Error-Message"] = err.message.encode("latin-1", "replace").decode("latin-1")
            if err.code:
                headers["X-Error-Code"] = err.code
        except Exception:  # a bug in this server: answer 500 and keep the trace for the test
            hub.errors.append(traceback.format_exc())
            status, payload, headers = 500, {"error": "internal test server error"}, {}
        hub.requests.append((self.command, self.path, status))
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):  # huggingface_hub sends sized bodies
            self.close_connection = True
            raise HubError(411, "Chunked request bodies are not supported by the test server")
        length = int(self.headers.get("Content-Length") or 0)
        if length > 512 * 1024 * 1024:
            raise HubError(413, "Payload too large for the test server")
        return self.rfile.read(length) if length else b""

    def _json(self, body: bytes) -> dict:
        try:
            value = json.loads(body)
        except ValueError:
            raise HubError(400, "Expected a JSON body") from None
        if not isinstance(value, dict):
            raise HubError(400, "Expected a JSON object")
        return value

    def _route(self, hub: HubServer, path: str, query: dict, body: bytes) -> tuple[int, object, dict]:
        method = "GET" if self.command == "HEAD" else self.command
        if path == "/api/repos/create":
            self._allow(method, "POST")
            status, payload = hub.create_repo(self._json(body))
            return status, payload, {}
        if path == "/api/validate-yaml":
            self._allow(method, "POST")
            content = self._json(body).get("content", "")
            if content.lstrip().startswith("---") and content.lstrip().count("\n---") == 0:
                return 400, {"errors": [{"message": "Unterminated YAML front matter"}]}, {}
            return 200, {"errors": [], "warnings": []}, {}
        if match := _API.match(path):
            kind, ns, name, rest = match.groups()
            repo, repo_id = hub.open_repo(kind, ns, name)
            action, _, tail = (rest or "").partition("/")
            rev_raw, _, sub = tail.partition("/")
            rev = unquote(rev_raw)
            if action in ("", "revision") and (action == "" or (rev and not sub)):
                self._allow(method, "GET")
                return 200, hub.info(repo, repo_id, kind, hub.head_of(repo, rev or "main")), {}
            if action == "refs" and not tail:
                self._allow(method, "GET")
                return 200, hub.refs(repo, query), {}
            if action == "tree" and rev:
                self._allow(method, "GET")
                sha, sub = hub.head_of(repo, rev), unquote(sub).strip("/")
                if sub and (repo.entry(sha, sub) or {}).get("type") != "directory":
                    raise HubError(404, f"No folder {sub} at {rev}", "EntryNotFound")
                recursive = query.get("recursive", "").lower() in ("1", "true")
                return 200, repo.ls(sha, sub, recursive=recursive, children=True), {}
            if action == "preupload" and rev and not sub:
                self._allow(method, "POST")
                files = self._json(body).get("files")
                if not isinstance(files, list) or not all(isinstance(f, dict) and {"path", "sample", "size"} <= set(f)
                                                          for f in files):
                    raise HubError(400, "preupload needs files: [{path, sample, size}]")
                sha = hub.head_of(repo, rev)
                oids = {e["path"]: e["oid"] for e in repo.ls(sha, recursive=True) if e["type"] == "file"}
                return 200, {"commitOid": sha, "files": [
                    {"path": _check_path(f["path"]), "uploadMode": "regular", "shouldIgnore": False,
                     "oid": oids.get(f["path"])} for f in files]}, {}
            if action == "commit" and rev and not sub:
                self._allow(method, "POST")
                return 200, hub.commit(repo, repo_id, kind, rev, body, query), {}
        elif match := _RESOLVE.match(path):
            self._allow(method, "GET")
            kind, ns, name, rev_raw, file_raw = match.groups()
            repo, _ = hub.open_repo(kind or "models", ns, name)
            sha, file_path = hub.head_of(repo, unquote(rev_raw)), unquote(file_raw)
            entry = repo.entry(sha, file_path)
            if entry is None or entry["type"] != "file":
                raise HubError(404, f"Entry {file_path} not found", "EntryNotFound", {"X-Repo-Commit": sha})
            data = b"" if self.command == "HEAD" else repo.git("cat-file", "blob", entry["oid"])
            return 200, data, {"Content-Type": "application/octet-stream", "Content-Length": str(entry["size"]),
                               "ETag": f'"{entry["oid"]}"', "X-Repo-Commit": sha}
        raise HubError(404, f"No such endpoint in the test Hub server: {self.command} {path}")

    def _allow(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise HubError(405, f"Method {self.command} not allowed here", headers={"Allow": allowed})
