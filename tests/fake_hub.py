"""A small local stand-in for the Hugging Face Hub HTTP API, for offline tests.

It speaks just the part of the Hub protocol that ``huggingface_hub`` 2.4's
client uses for ``snapshot_download`` and for ``create_repo`` +
``upload_folder`` of small files, so the real client code paths (cache
layout, refs, blobs, tree cache, commit payload) run against it:

====================================================  =========================================
``GET  /api/models/{owner}/{repo}[/revision/{rev}]``  ``model_info``: ``{"id", "sha", "siblings"}``
``GET  /api/models/{owner}/{repo}/tree/{rev}``         ``list_repo_tree``: one page of file entries
``HEAD|GET /{owner}/{repo}/resolve/{rev}/{path}``      file metadata (``X-Repo-Commit``, ``ETag``,
                                                       ``X-Linked-Etag``/``X-Linked-Size`` for LFS
                                                       files) and content
``POST /api/repos/create``                              ``create_repo`` (409 if it exists)
``POST /api/validate-yaml``                             README.md front matter check (parsed with
                                                       PyYAML, kept in ``validated_yaml``)
``POST /api/models/{owner}/{repo}/preupload/{rev}``     every file is ``"regular"``: no LFS or Xet
                                                       transfer is ever needed
``POST /api/models/{owner}/{repo}/commit/{rev}``        NDJSON commit (header + base64 files)
====================================================  =========================================

Errors use the Hub's ``X-Error-Code`` header (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``) so the client raises its usual
exception classes. Files whose name ends in ``.safetensors`` are served as
LFS files (etag = sha256, like the real Hub), so the cache gets the same
blob names it would get from huggingface.co. Any other request is answered
404 and recorded in ``unknown_requests``, so a test can assert the client
did nothing unexpected. Every request is recorded in ``requests``
(method, path, authorization header).

The server listens on 127.0.0.1 on a random free port, serves each
connection on a daemon thread, and shuts itself down after ``lifetime``
seconds even if a test forgets to stop it.

Example:
>>> with FakeHub() as hub:  # doctest: +SKIP
...     hub.add_repo("owner/repo", {"config.json": b"{}"})
...     path = snapshot_download("owner/repo", endpoint=hub.url, cache_dir=tmp)
"""

import base64
import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def git_blob_sha1(data):
    """The git object id of a blob, as the Hub reports it for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Repo:
    def __init__(self, repo_id, private=False):
        self.repo_id = repo_id
        self.private = private
        self.commits = []  # list of (sha, {path: bytes}), oldest first
        self.branches = {"main": None}

    def commit(self, files, message="commit", branch="main"):
        parent = self.branches.get(branch)
        base = dict(self.files_at(parent)) if parent else {}
        base.update(files)
        digest = hashlib.sha1()
        digest.update((parent or "").encode())
        digest.update(message.encode())
        for path in sorted(base):
            digest.update(path.encode() + b"\0" + hashlib.sha256(base[path]).digest())
        sha = digest.hexdigest()
        self.commits.append((sha, base))
        self.branches[branch] = sha
        return sha

    def resolve(self, revision):
        revision = urllib.parse.unquote(revision or "main")
        if revision in self.branches:
            return self.branches[revision]
        for sha, _ in self.commits:
            if sha == revision:
                return sha
        return None

    def files_at(self, sha):
        for commit_sha, files in self.commits:
            if commit_sha == sha:
                return files
        return {}


class FakeHub:
    """A threaded fake Hub on ``http://127.0.0.1:<port>``; use as a context manager."""

    def __init__(self, lifetime=60.0, lfs_suffixes=(".safetensors",)):
        self.repos = {}
        self.requests = []
        self.unknown_requests = []
        self.validated_yaml = []  # parsed README front matters that reached /api/validate-yaml
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self._timer = None

    # -- content ------------------------------------------------------------
    def add_repo(self, repo_id, files=None, private=False, message="initial commit"):
        """Create a repo, optionally with a first commit of ``{path: bytes}``; returns its commit sha or None."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo(repo_id, private))
            if files:
                return repo.commit({p: bytes(c) for p, c in files.items()}, message)
            return None

    def add_folder(self, repo_id, folder):
        """Commit every file of a local folder to ``repo_id``; returns the commit sha."""
        import os

        files = {}
        for root, _, names in os.walk(folder):
            for name in names:
                full = os.path.join(root, name)
                with open(full, "rb") as f:
                    files[os.path.relpath(full, folder).replace(os.sep, "/")] = f.read()
        return self.add_repo(repo_id, files)

    def files(self, repo_id, revision="main"):
        repo = self.repos[repo_id]
        return dict(repo.files_at(repo.resolve(revision)))

    # -- lifecycle ----------------------------------------------------------
    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        hub = self

        class Handler(_Handler):
            fake_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-hub", daemon=True)
        self._thread.start()
        # Bounded in time: stops by itself even if nobody calls stop().
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self):
        """Stop serving (idempotent; also called by the lifetime timer)."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            server, self._server_stopped = self._server, True
            if server is None or getattr(server, "_fake_hub_closed", False):
                return
            server._fake_hub_closed = True
        server.shutdown()
        server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake_hub = None
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every reply has Content-Length
    timeout = 10  # an idle keep-alive connection is closed after this many seconds

    def log_message(self, *args):  # keep test output clean
        pass

    # -- replies ------------------------------------------------------------
    def _send(self, status, body=b"", headers=None, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status, code, message):
        self._send(status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message})

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self):
        with self.fake_hub._lock:
            self.fake_hub.requests.append(
                {"method": self.command, "path": self.path, "authorization": self.headers.get("Authorization")}
            )

    def _unknown(self):
        with self.fake_hub._lock:
            self.fake_hub.unknown_requests.append((self.command, self.path))
        self._error(404, "EntryNotFound", f"fake hub: no route for {self.command} {self.path}")

    def _repo(self, repo_id):
        repo = self.fake_hub.repos.get(repo_id)
        if repo is None or (repo.private and not self.headers.get("Authorization")):
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        return repo

    # -- routing ------------------------------------------------------------
    def do_HEAD(self):
        self._record()
        self._route()

    def do_GET(self):
        self._record()
        self._route()

    def do_POST(self):
        self._record()
        self._route()

    def _route(self):
        parsed = urllib.parse.urlsplit(self.path)
        parts = [p for p in parsed.path.split("/") if p]
        method = self.command
        try:
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id = "/".join(parts[2:4])
                rest = parts[4:]
                if method == "GET" and not rest:
                    return self._model_info(repo_id, "main")
                if method == "GET" and rest[0] == "revision" and len(rest) == 2:
                    return self._model_info(repo_id, rest[1])
                if method == "GET" and rest[0] == "tree" and len(rest) >= 2:
                    return self._tree(repo_id, rest[1], "/".join(rest[2:]))
                if method == "POST" and rest[0] == "preupload" and len(rest) == 2:
                    return self._preupload(repo_id)
                if method == "POST" and rest[0] == "commit" and len(rest) == 2:
                    return self._commit(repo_id, rest[1])
            if method == "POST" and parts == ["api", "repos", "create"]:
                return self._create_repo()
            if method == "POST" and parts == ["api", "validate-yaml"]:
                return self._validate_yaml()
            if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        except (BrokenPipeError, ConnectionResetError):
            return None
        return self._unknown()

    # -- endpoints ----------------------------------------------------------
    def _model_info(self, repo_id, revision):
        repo = self._repo(repo_id)
        if repo is None:
            return None
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.files_at(sha)
        return self._send(200, {
            "id": repo_id,
            "modelId": repo_id,
            "sha": sha,
            "private": repo.private,
            "siblings": [{"rfilename": p} for p in sorted(files)],
        })

    def _entry(self, path, data):
        entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
        if path.endswith(self.fake_hub.lfs_suffixes):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _tree(self, repo_id, revision, subpath):
        repo = self._repo(repo_id)
        if repo is None:
            return None
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        prefix = urllib.parse.unquote(subpath).strip("/")
        entries = [
            self._entry(p, d) for p, d in sorted(repo.files_at(sha).items())
            if not prefix or p.startswith(prefix + "/")
        ]
        return self._send(200, entries)

    def _resolve(self, repo_id, revision, path):
        repo = self._repo(repo_id)
        if repo is None:
            return None
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        path = urllib.parse.unquote(path)
        files = repo.files_at(sha)
        if path not in files:
            return self._send(404, {"error": "Entry not found"},
                              headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha})
        data = files[path]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"', "Accept-Ranges": "none"}
        if path.endswith(self.fake_hub.lfs_suffixes):
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": len(data)})
        return self._send(200, data, headers=headers, content_type="application/octet-stream")

    def _create_repo(self):
        payload = json.loads(self._read_body() or b"{}")
        name, org = payload.get("name"), payload.get("organization")
        repo_id = f"{org}/{name}" if org else name
        private = payload.get("private") or payload.get("visibility") == "private"
        with self.fake_hub._lock:
            if repo_id in self.fake_hub.repos:
                exists = True
            else:
                exists = False
                self.fake_hub.repos[repo_id] = _Repo(repo_id, bool(private))
        if exists:
            # The real Hub includes the repo URL in its 409 body; create_repo(exist_ok=True) reads it.
            return self._send(409, {"error": "You already created this model repo", "url": f"{self._base()}/{repo_id}"},
                              headers={"X-Error-Message": "You already created this model repo"})
        return self._send(200, {"url": f"{self._base()}/{repo_id}", "name": repo_id})

    def _validate_yaml(self):
        # upload_folder sends README.md's front matter here before committing.
        import yaml

        content = json.loads(self._read_body() or b"{}").get("content", "")
        errors = []
        if not content.startswith("---"):
            errors.append("README.md has no YAML front matter")
        else:
            try:
                front = yaml.safe_load(content.split("---", 2)[1])
                if not isinstance(front, dict):
                    errors.append("the YAML front matter is not a mapping")
            except yaml.YAMLError as err:
                errors.append(f"invalid YAML: {err}")
                front = None
        with self.fake_hub._lock:
            self.fake_hub.validated_yaml.append(None if errors else front)
        if errors:
            return self._send(400, {"errors": [{"message": m} for m in errors]})
        return self._send(200, {"warnings": []})

    def _base(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _preupload(self, repo_id):
        body = json.loads(self._read_body() or b"{}")
        if self._repo(repo_id) is None:
            return None
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in body.get("files", [])
        ]
        return self._send(200, {"files": files, "commitOid": None})

    def _commit(self, repo_id, revision):
        raw = self._read_body()
        repo = self._repo(repo_id)
        if repo is None:
            return None
        summary, files = "commit", {}
        for line in raw.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            value = item.get("value", {})
            if item.get("key") == "header":
                summary = value.get("summary") or summary
            elif item.get("key") == "file":
                if value.get("encoding") != "base64":
                    return self._error(400, "BadRequest", "fake hub: only base64 regular files are supported")
                files[value["path"]] = base64.b64decode(value["content"])
            else:
                return self._error(400, "BadRequest", f"fake hub: unsupported commit item {item.get('key')!r}")
        branch = urllib.parse.unquote(revision)
        with self.fake_hub._lock:
            sha = repo.commit(files, summary, branch=branch)
        return self._send(200, {
            "commitUrl": f"{self._base()}/{repo_id}/commit/{sha}",
            "commitOid": sha,
            "pullRequestUrl": None,
        })


if __name__ == "__main__":  # manual use: python tests/fake_hub.py
    with FakeHub(lifetime=600) as hub:
        hub.add_repo("demo/repo", {"README.md": b"# demo\n"})
        print(f"fake hub on {hub.url} (HF_ENDPOINT={hub.url}); Ctrl-C to stop")
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            pass
