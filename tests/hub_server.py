"""A small Hugging Face Hub on 127.0.0.1: the HTTP API huggingface_hub uses to download and upload model repos.

What it serves, as the Hub does (see huggingface_hub's `file_download.py`,
`_snapshot_download.py`, `hf_api.py` and `_commit_api.py`):

* `HEAD`/`GET /{repo}/resolve/{revision}/{path}`: the file, with `X-Repo-Commit`,
  `ETag` (the git blob SHA-1) and `Content-Length`; files stored in LFS on the Hub
  (`*.h5`, `*.safetensors`, ...) carry `X-Linked-Etag` (their SHA-256) and
  `X-Linked-Size` too, and are served directly instead of through a CDN redirect.
* `GET /api/models/{repo}[/revision/{revision}]`: the model info (`sha`, `siblings`).
* `GET /api/models/{repo}/tree/{revision}`: the file listing (one page).
* `POST /api/repos/create`, `POST /api/validate-yaml`,
  `POST /api/models/{repo}/preupload/{revision}` (every file "regular": LFS and
  Xet uploads are not implemented) and `POST /api/models/{repo}/commit/{revision}`
  (ndjson: `header`, `file`, `deletedFile`).

Errors carry the Hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
`EntryNotFound`), so huggingface_hub raises its own exception classes. Every
request is recorded in `requests` as `(method, path)`; `corrupt` maps
`(repo, path)` to a function applied to the served bytes (the headers still
claim the true file's ETag, as a broken mirror or disk would).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".h5", ".safetensors", ".bin", ".pth", ".npz")
_GITATTRIBUTES = b"*.h5 filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, which the Hub uses as the ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Repo:
    """A model repo: commits as full `{path: bytes}` snapshots, and refs (`main`, tags) naming them."""

    def __init__(self):
        self.commits: dict[str, dict[str, bytes]] = {}
        self.refs: dict[str, str] = {}

    def resolve(self, revision: str) -> str | None:
        return self.refs.get(revision) or (revision if revision in self.commits else None)

    def commit(self, files: dict[str, bytes], branch: str = "main") -> str:
        parent = self.commits.get(self.refs.get(branch, ""), {})
        snapshot = {path: data for path, data in {**parent, **files}.items() if data is not None}
        content = json.dumps([len(self.commits), sorted(map(git_blob_sha1, snapshot.values()))])
        sha = hashlib.sha1(content.encode()).hexdigest()
        self.commits[sha] = snapshot
        self.refs[branch] = sha
        return sha


class FakeHub:
    """The server and the repos it holds; `url` is the endpoint to give huggingface_hub."""

    def __init__(self):
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.corrupt: dict[tuple[str, str], Callable[[bytes], bytes]] = {}
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> str:
        """Creates (or adds a commit to) `repo_id` with `files`; returns the commit SHA."""
        with self.lock:
            return self.repos.setdefault(repo_id, _Repo()).commit(files)

    def tag(self, repo_id: str, tag: str, sha: str) -> None:
        """Points the ref `tag` of `repo_id` at commit `sha`."""
        with self.lock:
            self.repos[repo_id].refs[tag] = sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of `repo_id` at `revision`, as `{path: bytes}`."""
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.resolve(revision)])

    def count(self, method: str, path_suffix: str) -> int:
        """How many `method` requests had a path ending with `path_suffix`."""
        return sum(1 for m, path in self.requests if m == method and path.endswith(path_suffix))


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            path = urlsplit(self.path).path
            parts = [unquote(part) for part in path.strip("/").split("/")]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
            with hub.lock:
                hub.requests.append((method, unquote(path)))
                if method in ("HEAD", "GET") and parts[2:3] == ["resolve"] and len(parts) >= 5:
                    self._resolve(method, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
                elif method == "POST" and parts == ["api", "repos", "create"]:
                    self._create_repo(json.loads(body))
                elif method == "POST" and parts == ["api", "validate-yaml"]:
                    self._send_json({"errors": [], "warnings": []})
                elif parts[:2] == ["api", "models"] and (handler := self._repo_api(method, parts)):
                    handler(f"{parts[2]}/{parts[3]}", parts[5] if len(parts) == 6 else "main", body)
                else:
                    self._send_error(404, None, f"Sorry, the fake Hub has no {method} {path}.")

        def _repo_api(self, method: str, parts: list[str]) -> Callable[[str, str, bytes], None] | None:
            """The handler of `/api/models/{owner}/{name}[/{action}/{revision}]`, or `None`."""
            if len(parts) not in (4, 6):
                return None
            action = parts[4] if len(parts) == 6 else "revision"
            return {
                ("GET", "revision"): self._model_info,
                ("GET", "tree"): self._tree,
                ("POST", "preupload"): self._preupload,
                ("POST", "commit"): self._commit,
            }.get((method, action))

        # === Responses ===

        def _send(self, status: int, body: bytes, headers: dict[str, str], head_only: bool = False) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def _send_json(self, data, status: int = 200) -> None:
            self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _send_error(self, status: int, code: str | None, message: str, extra: dict | None = None) -> None:
            headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
            if code is not None:
                headers["X-Error-Code"] = code
            self._send(status, json.dumps({"error": message}).encode(), headers, head_only=self.command == "HEAD")

        def _lookup(self, repo_id: str, revision: str) -> tuple[_Repo, str] | None:
            """The repo and commit for `revision`, or `None` after sending the Hub's 404."""
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._send_error(404, "RepoNotFound", "Repository not found")
                return None
            sha = repo.resolve(revision)
            if sha is None:
                self._send_error(404, "RevisionNotFound", "Invalid rev id: " + revision)
                return None
            return repo, sha

        def _resolve(self, method: str, repo_id: str, revision: str, filename: str) -> None:
            found = self._lookup(repo_id, revision)
            if found is None:
                return
            repo, sha = found
            data = repo.commits[sha].get(filename)
            if data is None:
                self._send_error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": sha})
                return
            served = hub.corrupt.get((repo_id, filename), lambda raw: raw)(data)
            headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"', "Accept-Ranges": "bytes"}
            if filename.endswith(LFS_SUFFIXES):
                lfs_etag = f'"{hashlib.sha256(data).hexdigest()}"'
                headers.update({"ETag": lfs_etag, "X-Linked-Etag": lfs_etag, "X-Linked-Size": str(len(served))})
            self._send(200, served, headers, head_only=method == "HEAD")

        def _model_info(self, repo_id: str, revision: str, body: bytes) -> None:
            found = self._lookup(repo_id, revision)
            if found is None:
                return
            repo, sha = found
            siblings = [{"rfilename": path} for path in sorted(repo.commits[sha])]
            self._send_json({"id": repo_id, "modelId": repo_id, "sha": sha, "private": False, "siblings": siblings})

        def _tree(self, repo_id: str, revision: str, body: bytes) -> None:
            found = self._lookup(repo_id, revision)
            if found is None:
                return
            repo, sha = found
            entries = []
            for path, data in sorted(repo.commits[sha].items()):
                entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
                if path.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(entry)
            self._send_json(entries)

        def _create_repo(self, payload: dict) -> None:
            repo_id = f"{payload['organization']}/{payload['name']}"
            url = f"{hub.url}/{repo_id}"
            if repo_id in hub.repos:
                self._send_json({"error": "You already created this model repo", "url": url}, status=409)
                return
            hub.repos[repo_id] = _Repo()
            hub.repos[repo_id].commit({".gitattributes": _GITATTRIBUTES})
            self._send_json({"url": url, "name": repo_id})

        def _preupload(self, repo_id: str, revision: str, body: bytes) -> None:
            found = self._lookup(repo_id, revision)
            if found is None:
                return
            repo, sha = found
            current = repo.commits[sha]
            files = [
                {
                    "path": item["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(current[item["path"]]) if item["path"] in current else None,
                }
                for item in json.loads(body)["files"]
            ]
            self._send_json({"files": files})

        def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
            found = self._lookup(repo_id, revision)
            if found is None:
                return
            repo, _ = found
            changes: dict[str, bytes | None] = {}
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    changes[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    changes[item["value"]["path"]] = None
                elif item["key"] != "header":
                    self._send_error(400, None, f"The fake Hub does not implement {item['key']!r} commit operations.")
                    return
            sha = repo.commit(changes, branch=revision)
            self._send_json({"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "success": True})

    return Handler
