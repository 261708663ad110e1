"""The real huggingface_hub client against the local Hub servers of hub_fixtures.py.

Uploads go to ``hub_upload_server`` (tests/hub_server.py); downloads come back through
``olah_server`` (the PyPI mirror, offline, serving the same git repositories) and from
the upload server itself. Each test runs under a hard deadline so a hung HTTP call
fails instead of blocking the run.
"""

import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub_fixtures import deadline

REPO = "lt-tester/ticket"
FILES = {
    "ticket_config.json": json.dumps({"seed": 1234, "density": 0.1}, indent=2).encode(),
    "masks.safetensors": bytes(range(256)) * 40 + b"\x00\xff" * 7,  # binary, 10 KB
    "README.md": b"---\nlicense: mit\ntags:\n- lottery-ticket\n---\n# A ticket\n",
    "samples/grid.bin": b"\x89PNG\r\n\x1a\n" + bytes(300),
}


@pytest.fixture(autouse=True)
def _hard_deadline():
    with deadline(20):
        yield


@pytest.fixture
def ticket_dir(tmp_path):
    folder = tmp_path / "ticket"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def published(hub_upload_server, hub_endpoint, ticket_dir):
    """REPO created and ``ticket_dir`` uploaded with upload_folder; returns the CommitInfo."""
    hub_endpoint(hub_upload_server.endpoint)
    api = HfApi(token=hub_upload_server.token)
    url = api.create_repo(REPO)
    assert url.repo_id == REPO and url.startswith(hub_upload_server.endpoint)
    return api.upload_folder(repo_id=REPO, folder_path=ticket_dir, commit_message="Publish ticket")


def test_upload_folder_commits_files_to_git(published, hub_upload_server):
    commit = hub_upload_server.commits[-1]
    assert (commit.repo_id, commit.revision, commit.message) == (REPO, "main", "Publish ticket")
    assert sorted(commit.added) == sorted(FILES)
    assert published.oid == commit.oid
    for name, data in FILES.items():
        assert hub_upload_server.read_file(REPO, name) == data
        assert (hub_upload_server.root / "models" / REPO / name).read_bytes() == data  # main checked out
    info = HfApi(token=hub_upload_server.token).model_info(REPO, revision="main")
    assert info.sha == commit.oid
    assert sorted(s.rfilename for s in info.siblings) == sorted(FILES)


def test_snapshot_download_through_olah_is_byte_identical(published, olah_server, hub_endpoint):
    endpoint = hub_endpoint(olah_server.endpoint)
    folder = snapshot_download(REPO)
    assert folder.startswith(str(endpoint.cache_dir))
    assert published.oid in folder  # the snapshot is the commit the upload created
    downloaded = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
    assert downloaded == FILES


def test_hf_hub_download_of_one_file_at_main(published, olah_server, hub_upload_server, hub_endpoint):
    hub_endpoint(olah_server.endpoint)
    path = hf_hub_download(REPO, "ticket_config.json", revision="main")
    assert open(path, "rb").read() == FILES["ticket_config.json"]
    # The upload server serves downloads too (token required there).
    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    path = hf_hub_download(REPO, "samples/grid.bin", revision="main", force_download=True)
    assert open(path, "rb").read() == FILES["samples/grid.bin"]


def test_upload_file_and_second_commit_are_seen_by_olah(published, hub_upload_server, olah_server, hub_endpoint):
    api = HfApi(token=hub_upload_server.token)
    before = hub_upload_server.requests.count(("POST", "/api/validate-yaml", 200))
    info = api.upload_file(path_or_fileobj=b"# New card\n", path_in_repo="README.md", repo_id=REPO,
                           commit_message="Update card")
    assert hub_upload_server.commits[-1].message == "Update card" and info.oid != published.oid
    assert hub_upload_server.commits[-1].added == ["README.md"]
    assert hub_upload_server.requests.count(("POST", "/api/validate-yaml", 200)) == before + 1
    hub_endpoint(olah_server.endpoint)
    assert open(hf_hub_download(REPO, "README.md"), "rb").read() == b"# New card\n"
    tree = {f.path for f in HfApi().list_repo_tree(REPO, recursive=True)}
    assert tree == set(FILES) | {"samples"}


def test_unchanged_reupload_makes_no_commit(published, hub_upload_server, ticket_dir):
    # The server reports the remote blob oids at preupload, so the client drops unchanged files.
    before = len(hub_upload_server.commits)
    info = HfApi(token=hub_upload_server.token).upload_folder(repo_id=REPO, folder_path=ticket_dir)
    assert len(hub_upload_server.commits) == before and info.oid == published.oid


def test_create_repo_exist_ok(hub_upload_server, hub_endpoint):
    hub_endpoint(hub_upload_server.endpoint)
    api = HfApi(token=hub_upload_server.token)
    api.create_repo(REPO)
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409


def test_wrong_token_is_refused(hub_upload_server, hub_endpoint):
    hub_endpoint(hub_upload_server.endpoint)
    for token in ("hf_wrong", False):  # a wrong token, then none at all
        with pytest.raises(HfHubHTTPError) as err:
            HfApi(token=token).create_repo(REPO, exist_ok=True)
        assert err.value.response.status_code == 401
        assert not isinstance(err.value, RepositoryNotFoundError)
    assert not (hub_upload_server.root / "models" / REPO).exists()


def test_missing_repo_revision_and_file_raise_client_errors(published, hub_upload_server, olah_server,
                                                            hub_endpoint):
    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("lt-tester/missing", "README.md")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "README.md", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("lt-tester/missing")
    hub_endpoint(olah_server.endpoint)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("lt-tester/missing", "README.md")
    # olah 0.5 answers a missing file of a mirrored repo with 401 RepoNotFound (offline mode
    # falls through to its empty upstream cache), so the client reports the repo, not the file.
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(REPO, "missing.json")


def test_hub_endpoint_patches_and_restores_the_client(hub_upload_server, hub_endpoint):
    import huggingface_hub
    import huggingface_hub.constants as C

    before = (C.ENDPOINT, C.HUGGINGFACE_CO_URL_TEMPLATE, C.HF_HUB_OFFLINE, C.HF_HUB_CACHE,
              huggingface_hub.hf_api.api.endpoint, os.environ.get("HF_ENDPOINT"))
    with hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token) as endpoint:
        assert C.ENDPOINT == os.environ["HF_ENDPOINT"] == hub_upload_server.endpoint
        assert not C.HF_HUB_OFFLINE and C.HF_HUB_CACHE == str(endpoint.cache_dir)
        # Module-level helpers go through the HfApi instance made at import time; the token
        # comes from HF_TOKEN.
        assert huggingface_hub.create_repo("lt-tester/other").repo_id == "lt-tester/other"
        assert huggingface_hub.hf_hub_url("lt-tester/other", "a").startswith(hub_upload_server.endpoint)
    after = (C.ENDPOINT, C.HUGGINGFACE_CO_URL_TEMPLATE, C.HF_HUB_OFFLINE, C.HF_HUB_CACHE,
             huggingface_hub.hf_api.api.endpoint, os.environ.get("HF_ENDPOINT"))
    assert after == before


def test_server_rejects_unknown_and_malformed_requests(hub_upload_server):
    def call(method, path, body=None, token=hub_upload_server.token):
        conn = http.client.HTTPConnection(urlsplit(hub_upload_server.endpoint).netloc, timeout=5)
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    create = "/api/repos/create"
    assert call("GET", "/api/unknown").status == 404
    assert call("GET", "/api/models/o/t/revision/main", token="wrong").status == 401
    assert call("GET", create).status == 405
    assert call("POST", create, b"not json").status == 400
    assert call("POST", create, b'{"name": "t"}').status == 400  # no namespace
    assert call("POST", create, b'{"name": "t", "organization": "o"}').status == 200
    assert call("POST", create, b'{"name": "..", "organization": "o"}').status == 400
    header = b'{"key":"header","value":{"summary":"x"}}\n'
    commit = "/api/models/o/t/commit/main"
    assert call("POST", commit, b'{"key": "lfsFile", "value": {}}\n').status == 400  # no header
    assert call("POST", commit, header + b'{"key":"lfsFile","value":{"path":"a","oid":"0"}}\n').status == 400
    escape = b'{"key":"file","value":{"path":"../x","content":"","encoding":"base64"}}\n'
    assert call("POST", commit, header + escape).status == 400
    assert call("GET", "/api/models/o/t/revision/nope").getheader("X-Error-Code") == "RevisionNotFound"
    assert call("GET", "/api/models/o/missing").getheader("X-Error-Code") == "RepoNotFound"
    assert hub_upload_server.commits == []
