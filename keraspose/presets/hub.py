"""Preset handles, the catalogue, the Hugging Face Hub, and the official-checkpoint fallback.

A *handle* names a preset in one of three ways:

* a local directory: ``"./my_preset"``, ``"/data/presets/hrnet"``;
* a Hugging Face Hub repo: ``"hf://owner/repo"`` or ``"hf://owner/repo@revision"``
  (branch, tag or commit), fetched with ``huggingface_hub.snapshot_download``
  into the standard Hub cache, so ``HF_HOME``, ``HF_HUB_CACHE``,
  ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` / ``hf auth login`` all
  apply as usual (and are read when the call is made, not only when
  huggingface_hub was imported);
* a catalogue name: ``"hrnet_w32_coco"`` (see :func:`list_presets`),
  an entry of the json files shipped in ``keraspose/presets/catalogue/``.

A catalogue preset is looked for, in order: bundled with the package; already
converted in the keraspose cache (``KERASPOSE_HOME``, default
``~/.cache/keraspose``); its Hub repo (or the Hub cache); and finally the
official checkpoint (MMPose, MMDetection), downloaded, checked against its
sha256 and converted locally by the converter the entry names
(:func:`convert_checkpoint_preset`, :mod:`keraspose.presets.registry`).

Nothing waits long on a dead network: the Hub is first probed with a short
timeout (``KERASPOSE_HUB_TIMEOUT``, else ``HF_HUB_ETAG_TIMEOUT``, else 5 s),
falling back to the cache at once when it does not answer; the checkpoint
download uses the same timeout per socket operation. ``HF_HUB_OFFLINE=1`` or
``KERASPOSE_OFFLINE=1`` disable every network access. When nothing works the
error names the Hub repo and the checkpoint URL that were tried and what to do.

Example:
>>> from keraspose.presets import resolve_preset, load_preset
>>> preset_dir = resolve_preset("hf://keraspose/hrnet_w32_coco")  # doctest: +SKIP
>>> model = load_preset(preset_dir)  # doctest: +SKIP
"""

import difflib
import hashlib
import http.client
import json
import math
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from keraspose.presets.preset_io import (
    CONFIG_FILE,
    METADATA_FILE,
    PRESET_FILES,
    README_FILE,
    WEIGHTS_FILE,
    _sha256_file,
    load_preset,
    load_preset_metadata,
    save_preset,
)
from keraspose.utils.atomic import atomic_write

__all__ = [
    "PresetUnavailableError",
    "CheckpointDownloadError",
    "PresetHandle",
    "parse_handle",
    "keraspose_home",
    "list_presets",
    "get_catalogue_entry",
    "resolve_preset",
    "snapshot_from_hub",
    "download_checkpoint",
    "convert_checkpoint_preset",
    "validate_preset",
    "upload_preset",
]

CATALOGUE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalogue")
BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled")
DEFAULT_TIMEOUT = 5.0
_USER_AGENT = "keraspose"


class PresetUnavailableError(OSError):
    """A preset could not be found or fetched (network down, not cached, no such repo)."""


class CheckpointDownloadError(ConnectionError):
    """An official checkpoint could not be downloaded (network, HTTP error or checksum)."""


# ---------------------------------------------------------------------------
# Settings read at call time
# ---------------------------------------------------------------------------
def _truthy(value):
    return str(value).strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline():
    """True if HF_HUB_OFFLINE / KERASPOSE_OFFLINE is set now (or was when huggingface_hub was imported)."""
    if _truthy(os.environ.get("KERASPOSE_OFFLINE", "")):
        return True
    if _truthy(os.environ.get("HF_HUB_OFFLINE", "")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE", "")):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _timeout(timeout=None):
    if timeout is not None:
        return float(timeout)
    for var in ("KERASPOSE_HUB_TIMEOUT", "HF_HUB_ETAG_TIMEOUT"):
        value = os.environ.get(var)
        if value:
            try:
                return float(value)
            except ValueError:
                pass
    return DEFAULT_TIMEOUT


def _hf_endpoint(endpoint=None):
    # huggingface_hub reads HF_ENDPOINT once, at import; reading it here too
    # lets a later os.environ change (or a test) take effect.
    return (endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None


def _hf_cache_dir():
    # Same precedence as huggingface_hub.constants, but evaluated now.
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.path.expandvars(os.environ[var]))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(os.environ["HF_HOME"])), "hub")
    return None  # huggingface_hub's own default


def _describe_cache_dir(cache_dir):
    if cache_dir:
        return cache_dir
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def keraspose_home():
    """The keraspose cache directory: ``$KERASPOSE_HOME``, else ``$XDG_CACHE_HOME/keraspose``, else ``~/.cache/keraspose``."""
    if os.environ.get("KERASPOSE_HOME"):
        return os.path.expanduser(os.path.expandvars(os.environ["KERASPOSE_HOME"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "keraspose")


def _is_network_error(err):
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(err, (OfflineModeIsEnabled, ConnectionError, TimeoutError, socket.timeout, urllib.error.URLError,
                        http.client.HTTPException)):
        return True
    # httpx2 / httpx / requests transport errors, matched by name so that any
    # huggingface_hub generation (requests, httpx, httpx2) is covered.
    names = {cls.__name__ for cls in type(err).__mro__}
    return bool(names & {"TransportError", "NetworkError", "TimeoutException", "ConnectError", "ConnectTimeout",
                         "ReadTimeout", "ProxyError", "Timeout"})


# ---------------------------------------------------------------------------
# Handles
# ---------------------------------------------------------------------------
class PresetHandle(tuple):
    """``(kind, value, revision)`` with ``kind`` in ``{"local", "hf", "catalogue"}``."""

    __slots__ = ()

    def __new__(cls, kind, value, revision=None):
        return super().__new__(cls, (kind, value, revision))

    kind = property(lambda self: self[0])
    value = property(lambda self: self[1])
    revision = property(lambda self: self[2])


def parse_handle(handle):
    """Classify a preset handle.

    Example:
    >>> parse_handle("hf://keraspose/hrnet_w32_coco@v1")
    ('hf', 'keraspose/hrnet_w32_coco', 'v1')
    >>> parse_handle("hrnet_w32_coco").kind
    'catalogue'
    """
    if isinstance(handle, os.PathLike):
        return PresetHandle("local", os.fspath(handle))
    if not isinstance(handle, str) or not handle.strip():
        raise ValueError(f"a preset handle must be a non-empty string or path, got {handle!r}")
    handle = handle.strip()
    if handle.startswith("hf://"):
        rest = handle[len("hf://"):].strip("/")
        revision = None
        if "@" in rest:
            rest, revision = rest.split("@", 1)
            if not revision:
                raise ValueError(f"{handle!r}: empty revision after '@'")
        parts = rest.split("/")
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"{handle!r} is not a Hub handle: expected hf://owner/repo or hf://owner/repo@revision"
            )
        return PresetHandle("hf", rest, revision)
    if os.path.isdir(os.path.expanduser(handle)):
        return PresetHandle("local", os.path.expanduser(handle))
    looks_like_path = (
        os.sep in handle or (os.altsep and os.altsep in handle) or handle.startswith((".", "~"))
    )
    if looks_like_path:
        hint = ""
        if handle.count("/") == 1 and not handle.startswith((".", "/", "~")):
            hint = f" For the Hugging Face Hub repo, use 'hf://{handle}'."
        raise FileNotFoundError(f"preset directory not found: {handle}.{hint}")
    return PresetHandle("catalogue", handle)


# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------
# hub_handle, checkpoint_url (+ checkpoint_sha256[_prefix]), converter
# ("mmpose", "mmdet"; inferred for older entries) with its <converter>_config
# name and <converter>_model dict, and task ("pose", "detector") are optional:
# a preset bundled with the package (entry field "bundled": a folder name
# under keraspose/presets/bundled/) needs none of them.
_REQUIRED_FIELDS = ("name", "description", "class", "license")


def _catalogue_dirs():
    dirs = [CATALOGUE_DIR]
    # Extra catalogues (an organisation's own presets, or tests) on a
    # os.pathsep-separated search path, searched after the shipped one.
    extra = os.environ.get("KERASPOSE_CATALOGUE_PATH", "")
    dirs += [d for d in extra.split(os.pathsep) if d]
    return dirs


def _load_catalogue():
    entries = {}
    for directory in _catalogue_dirs():
        if not os.path.isdir(directory):
            continue
        for filename in sorted(os.listdir(directory)):
            if not filename.endswith(".json"):
                continue
            path = os.path.join(directory, filename)
            with open(path, encoding="utf-8") as f:
                try:
                    entry = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(f"catalogue file {path} is not valid JSON: {err}") from err
            missing = [k for k in _REQUIRED_FIELDS if k not in entry]
            if missing:
                raise ValueError(f"catalogue file {path} lacks the fields {missing}")
            entry["_catalogue_file"] = path
            entries.setdefault(entry["name"], entry)
    return entries


def list_presets():
    """Sorted names of every catalogue preset.

    Example:
    >>> "hrnet_w32_coco" in list_presets()
    True
    """
    return sorted(_load_catalogue())


def get_catalogue_entry(name):
    """The catalogue entry (a dict) of a preset name; a ``ValueError`` suggesting close names if unknown.

    Example:
    >>> get_catalogue_entry("hrnet_w32_coco")["mmpose_config"]
    'td-hm_hrnet-w32_8xb64-210e_coco-256x192'
    """
    catalogue = _load_catalogue()
    if name not in catalogue:
        close = difflib.get_close_matches(name, list(catalogue), n=3, cutoff=0.5)
        suggestion = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown preset {name!r}.{suggestion} Known presets: {', '.join(sorted(catalogue)) or 'none'}. "
            "A preset can also be a local directory or 'hf://owner/repo'."
        )
    entry = json.loads(json.dumps(catalogue[name]))  # a deep copy: callers may edit it
    return entry


# ---------------------------------------------------------------------------
# Hugging Face Hub
# ---------------------------------------------------------------------------
def _probe_hub(api, repo_id, revision, timeout):
    """Ask the Hub about the repo with a short timeout; returns None if reachable, else the reason.

    snapshot_download's own first request has no timeout in huggingface_hub
    2.x (its HTTP client is created with ``timeout=None``), so a black-holed
    connection would hang it; this probe is what bounds the wait.
    """
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        api.model_info(repo_id, revision=revision, timeout=timeout)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status is not None and status < 500:
            raise
        return f"the Hub answered with an error ({status}): {err}"
    except Exception as err:
        if _is_network_error(err):
            return f"{type(err).__name__}: {err}".strip()
        raise
    return None


def snapshot_from_hub(repo_id, revision=None, *, token=None, endpoint=None, timeout=None):
    """Local directory of a Hub repo's snapshot: downloaded, or from the Hub cache when offline.

    Uses ``huggingface_hub.snapshot_download`` and its standard cache layout
    (``models--owner--repo/{blobs,snapshots/<commit>,refs}``). If the Hub
    does not answer within ``timeout`` seconds, or offline mode is on, only
    the cache is used.

    Raises:
        PresetUnavailableError: not reachable and not cached, no such repo or
            revision, or access denied; the message says which.

    Example:
    >>> snapshot_from_hub("keraspose/hrnet_w32_coco")  # doctest: +SKIP
    '/root/.cache/huggingface/hub/models--keraspose--hrnet_w32_coco/snapshots/1f2e...'
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = _hf_endpoint(endpoint)
    cache_dir = _hf_cache_dir()
    timeout = _timeout(timeout)
    handle = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    reason = None
    if _offline():
        reason = "offline mode is on (HF_HUB_OFFLINE or KERASPOSE_OFFLINE)"
    else:
        api = HfApi(endpoint=endpoint, token=token)
        try:
            reason = _probe_hub(api, repo_id, revision, timeout)
        except GatedRepoError as err:
            raise PresetUnavailableError(
                f"{handle}: the repo is gated; accept its conditions on the Hub and log in "
                f"(`hf auth login` or HF_TOKEN). ({err})"
            ) from err
        except RevisionNotFoundError as err:
            raise PresetUnavailableError(f"{handle}: revision {revision!r} does not exist on the Hub. ({err})") from err
        except RepositoryNotFoundError as err:
            raise PresetUnavailableError(
                f"{handle}: no such repo on the Hub ({endpoint or 'default endpoint'}), or it is private and no "
                f"valid token was given (`hf auth login`, HF_TOKEN, or token=...). ({err})"
            ) from err
        except HfHubHTTPError as err:
            raise PresetUnavailableError(f"{handle}: the Hub refused the request: {err}") from err

    if reason is not None:
        try:
            return snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True,
                                     token=token)
        except LocalEntryNotFoundError as err:
            raise PresetUnavailableError(
                f"{handle}: the Hub could not be reached ({reason}) and no complete copy is in the Hugging Face "
                f"cache ({_describe_cache_dir(cache_dir)}). Connect once to download it, or copy the preset "
                "directory here and pass its path."
            ) from err
    try:
        return snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, endpoint=endpoint, token=token,
                                 etag_timeout=timeout)
    except Exception as err:
        if _is_network_error(err) or isinstance(err, (HfHubHTTPError, LocalEntryNotFoundError)):
            raise PresetUnavailableError(f"{handle}: download from the Hub failed: {err}") from err
        raise


# ---------------------------------------------------------------------------
# Official checkpoints
# ---------------------------------------------------------------------------
def _progress_line(name, done, total, start):
    elapsed = max(time.monotonic() - start, 1e-6)
    rate = done / elapsed / 1e6
    if total:
        width = 30
        filled = int(width * done / total)
        return f"\r{name}: [{'#' * filled}{'.' * (width - filled)}] {done / 1e6:.1f}/{total / 1e6:.1f} MB {rate:.1f} MB/s"
    return f"\r{name}: {done / 1e6:.1f} MB {rate:.1f} MB/s"


def _check_sha256(digest, expected, url):
    expected = (expected or "").lower()
    if not expected:
        return
    # MMPose publishes the first 8 hex digits of a checkpoint's sha256 in its
    # file name (e.g. ...-81c58e40_20220909.pth); a prefix is accepted.
    if len(expected) < 8 or not digest.startswith(expected):
        raise CheckpointDownloadError(
            f"{url}: sha256 mismatch (expected {expected}{'...' if len(expected) < 64 else ''}, got {digest}); "
            "the download is corrupt or the file changed upstream. The partial file was removed; try again."
        )


def download_checkpoint(url, dest_dir=None, *, sha256=None, timeout=None, progress=True, filename=None):
    """Download ``url`` into ``dest_dir`` (default ``KERASPOSE_HOME/checkpoints``), verified and atomic.

    A file already there whose sha256 matches is reused without any network
    access. The download streams into a temporary file (removed on any
    error, Ctrl-C included) and shows a progress bar on stderr.

    Args:
        url: http(s) or file URL.
        sha256: the expected digest, full or a prefix of at least 8 hex
            digits (MMPose publishes 8). ``None`` skips the check.
        timeout: seconds for each socket operation (connect, each read).

    Raises:
        CheckpointDownloadError: network failure, HTTP error, or checksum mismatch.

    Example:
    >>> download_checkpoint("https://download.openmmlab.com/.../td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth",
    ...                     sha256="81c58e40")  # doctest: +SKIP
    """
    dest_dir = dest_dir or os.path.join(keraspose_home(), "checkpoints")
    filename = filename or os.path.basename(urllib.parse.urlparse(url).path) or "checkpoint.pth"
    dest = os.path.join(dest_dir, filename)
    if os.path.isfile(dest):
        try:
            _check_sha256(_sha256_file(dest), sha256, dest)
            return dest
        except CheckpointDownloadError:
            pass  # a stale or corrupt file: download again (atomically replaced)
    if _offline():
        raise CheckpointDownloadError(f"{url}: not downloaded, offline mode is on (HF_HUB_OFFLINE or KERASPOSE_OFFLINE)")
    os.makedirs(dest_dir, exist_ok=True)
    timeout = _timeout(timeout)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, atomic_write(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, start, last = 0, time.monotonic(), 0.0
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                done += len(block)
                now = time.monotonic()
                if progress and now - last > 0.2:
                    sys.stderr.write(_progress_line(filename, done, total, start))
                    sys.stderr.flush()
                    last = now
            if total and done != total:
                raise CheckpointDownloadError(f"{url}: connection closed after {done} of {total} bytes")
            _check_sha256(digest.hexdigest(), sha256, url)
            if progress:
                sys.stderr.write(_progress_line(filename, done, total, start) + "\n")
                sys.stderr.flush()
    except CheckpointDownloadError:
        raise
    except urllib.error.HTTPError as err:
        raise CheckpointDownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise CheckpointDownloadError(f"{url}: {getattr(err, 'reason', None) or err}") from err
    return dest


def _converted_dir(name, cache_root=None):
    return os.path.join(cache_root or keraspose_home(), "presets", name)


def _is_complete_preset(path):
    return os.path.isdir(path) and all(os.path.isfile(os.path.join(path, f)) for f in (CONFIG_FILE, WEIGHTS_FILE))


def convert_checkpoint_preset(entry, converter=None, *, cache_root=None, timeout=None, progress=True):
    """Build a catalogue preset from its official checkpoint; returns the preset directory.

    Downloads ``entry["checkpoint_url"]`` (verified against
    ``checkpoint_sha256`` or ``checkpoint_sha256_prefix``), converts it with
    the entry's converter (``entry["converter"]``: ``"mmpose"``,
    ``"mmdet"``, ...; see :mod:`keraspose.presets.registry`), and saves the
    model as a preset under ``KERASPOSE_HOME/presets/<name>`` (or
    ``cache_root``). A ``converter`` callable replaces the registered one:
    it is called as ``converter(source_config, checkpoint_path)`` with the
    entry's ``<converter>_model`` dict (else its ``<converter>_config`` name).

    Example:
    >>> entry = get_catalogue_entry("hrnet_w32_coco")
    >>> convert_checkpoint_preset(entry)  # doctest: +SKIP
    '/root/.cache/keraspose/presets/hrnet_w32_coco'
    """
    from keraspose.presets import registry

    name = entry["name"]
    target = _converted_dir(name, cache_root)
    if _is_complete_preset(target):
        return target
    checkpoint = download_checkpoint(
        entry["checkpoint_url"],
        os.path.join(cache_root or keraspose_home(), "checkpoints"),
        sha256=entry.get("checkpoint_sha256") or entry.get("checkpoint_sha256_prefix"),
        timeout=timeout,
        progress=progress,
    )
    if converter is not None:
        model = converter(registry.source_model_config(entry), checkpoint)
    else:
        model = registry.convert_catalogue_checkpoint(entry, checkpoint)
    source = registry.catalogue_converter(entry)
    metadata = {
        "name": name,
        "task": registry.catalogue_task(entry),
        "description": entry.get("description"),
        "license": entry.get("license"),
        "datasets": [entry["dataset"]] if entry.get("dataset") else None,
        "metrics": entry.get("reported_metrics") or ({"coco/AP": entry["reported_ap"]} if "reported_ap" in entry else {}),
        "metrics_source": entry.get("metrics_source") or "reported by the source model zoo for the original checkpoint",
        "class_names": entry.get("class_names"),
        f"{source}_config": entry.get(f"{source}_config") if source else None,
        "source_checkpoint": entry["checkpoint_url"],
        "source_checkpoint_sha256": _sha256_file(checkpoint),
        "hub_handle": entry.get("hub_handle"),
        "converted_locally": True,
    }
    metadata = {k: v for k, v in metadata.items() if v is not None}
    try:
        save_preset(model, target, metadata=metadata)
    except FileExistsError:
        # Another process converted it at the same time; theirs is as good.
        if not _is_complete_preset(target):
            raise
    return target


# ---------------------------------------------------------------------------
# Resolve
# ---------------------------------------------------------------------------
def _how_to_proceed(entry):
    from keraspose.presets import registry

    source = registry.catalogue_converter(entry)
    config_name = entry.get(f"{source}_config") if source else None
    if not config_name:
        return "To proceed: connect to the Hub once, or copy a Hugging Face cache that has the preset."
    return (
        "To proceed: download the checkpoint on a machine with internet access (and copy it here), convert it "
        f"with\n    keraspose convert {source} {config_name} CHECKPOINT.pth --out DIR\n"
        "and load it with from_preset(\"DIR\"); or copy a Hugging Face cache that has "
        f"{entry.get('hub_handle')} and point HF_HOME at it."
    )


def resolve_preset(handle, *, token=None, converter=None, timeout=None, progress=True):
    """The local directory of a preset handle (directory, ``hf://owner/repo[@rev]``, or catalogue name).

    Args:
        handle: see the module docstring.
        token: Hugging Face token for private repos (default: the usual
            HF_TOKEN / saved login).
        converter: ``converter(source_config, checkpoint_path) -> keras.Model``
            for the last-resort conversion of an official checkpoint
            (default: the converter the catalogue entry names, e.g.
            ``keraspose.convert.mmpose`` or ``keraspose.convert.mmdet``).
        timeout: network timeout in seconds (default: see module docstring).
        progress: show a progress bar for checkpoint downloads.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a malformed handle or an unknown catalogue name.
        PresetUnavailableError: every source failed; the message lists each
            one tried (Hub repo, checkpoint URL) with its error and what to do.

    Example:
    >>> resolve_preset("hrnet_w32_coco")  # doctest: +SKIP
    """
    parsed = parse_handle(handle)
    if parsed.kind == "local":
        if not os.path.isdir(parsed.value):
            raise FileNotFoundError(f"preset directory not found: {parsed.value}")
        return parsed.value
    if parsed.kind == "hf":
        return snapshot_from_hub(parsed.value, parsed.revision, token=token, timeout=timeout)

    entry = get_catalogue_entry(parsed.value)
    name = entry["name"]
    if entry.get("bundled"):
        bundled = os.path.join(BUNDLED_DIR, entry["bundled"])
        if _is_complete_preset(bundled):
            return bundled
    converted = _converted_dir(name)
    if _is_complete_preset(converted):
        return converted

    attempts = []
    hub = parse_handle(entry["hub_handle"]) if entry.get("hub_handle") else None
    if hub is not None and hub.kind == "hf":
        try:
            return snapshot_from_hub(hub.value, hub.revision, token=token, timeout=timeout)
        except PresetUnavailableError as err:
            attempts.append(f"- Hugging Face Hub repo {entry['hub_handle']}: {err}")
    if not entry.get("checkpoint_url"):
        raise PresetUnavailableError(f"could not get preset {name!r}. Tried:\n" + "\n".join(attempts or ["- nothing"]))
    try:
        return convert_checkpoint_preset(entry, converter, timeout=timeout, progress=progress)
    except CheckpointDownloadError as err:
        attempts.append(f"- official checkpoint {entry['checkpoint_url']}: {err}")
    except Exception as err:
        attempts.append(
            f"- official checkpoint {entry['checkpoint_url']}: downloaded, but converting it failed: "
            f"{type(err).__name__}: {err}"
        )
    raise PresetUnavailableError(
        f"could not get preset {name!r}. Tried:\n" + "\n".join(attempts) + "\n" + _how_to_proceed(entry)
    )


# ---------------------------------------------------------------------------
# Validate and upload
# ---------------------------------------------------------------------------
def _all_finite(outputs):
    import keras
    import numpy as np

    leaves = keras.tree.flatten(outputs)
    return all(np.isfinite(np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)).all() for x in leaves)


def validate_preset(preset_dir, *, forward=True):
    """Check that a preset directory is complete and works; returns a small report dict.

    Checks: every preset file is there; the weights match the sha256 in
    metadata.json; README.md has a YAML front matter; the model loads with
    :func:`load_preset`; and, if the model has ``dummy_inputs()``, one
    forward pass on them gives only finite numbers.

    Raises:
        ValueError: the first problem found, with the file concerned.

    Example:
    >>> validate_preset("my_preset")  # doctest: +SKIP
    {'class_name': 'keraspose>TopdownEstimator', 'forward': 'ok', ...}
    """
    preset_dir = os.fspath(preset_dir)
    if not os.path.isdir(preset_dir):
        raise ValueError(f"{preset_dir} is not a directory")
    missing = [f for f in PRESET_FILES if not os.path.isfile(os.path.join(preset_dir, f))]
    if missing:
        raise ValueError(f"{preset_dir} lacks {', '.join(missing)}; re-create it with save_preset(model, DIR)")
    metadata = load_preset_metadata(preset_dir)
    expected = (metadata.get("weights") or {}).get("sha256")
    if expected and _sha256_file(os.path.join(preset_dir, WEIGHTS_FILE)) != expected:
        raise ValueError(
            f"{os.path.join(preset_dir, WEIGHTS_FILE)} does not match the sha256 recorded in {METADATA_FILE}: "
            "the weights were modified or corrupted after saving"
        )
    with open(os.path.join(preset_dir, README_FILE), encoding="utf-8") as f:
        if not f.read().startswith("---"):
            raise ValueError(f"{os.path.join(preset_dir, README_FILE)} has no YAML front matter (model card metadata)")
    try:
        model = load_preset(preset_dir)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"{preset_dir} does not load: {err}") from err
    report = {
        "class_name": metadata.get("class_name") or type(model).__name__,
        "num_parameters": int(sum(math.prod(int(d) for d in v.shape) for v in model.weights)),
        "forward": "skipped (the model has no dummy_inputs())",
    }
    if forward and hasattr(model, "dummy_inputs"):
        outputs = model(model.dummy_inputs(), training=False)
        if not _all_finite(outputs):
            raise ValueError(f"{preset_dir}: a forward pass on dummy_inputs() gives NaN or infinite values")
        report["forward"] = "ok"
    return report


def upload_preset(handle, preset_dir, private=False, token=None, endpoint=None, commit_message=None):
    """Validate a preset directory and upload it to a Hugging Face Hub model repo.

    The repo is created if needed (``create_repo(exist_ok=True)``), then the
    preset files are committed with ``upload_folder``. An invalid preset is
    refused before anything is sent.

    Args:
        handle: ``"hf://owner/repo"`` (``@revision`` uploads to that branch).
        preset_dir: a directory written by :func:`save_preset`.
        private: create the repo private.
        token: a write token (default: HF_TOKEN / saved login).
        endpoint: Hub URL (default: HF_ENDPOINT or huggingface.co).

    Returns:
        the commit URL.

    Example:
    >>> upload_preset("hf://keraspose/hrnet_w32_coco", "hrnet_w32_coco")  # doctest: +SKIP
    """
    parsed = parse_handle(handle) if str(handle).startswith("hf://") else None
    if parsed is None or parsed.kind != "hf":
        raise ValueError(f"upload_preset needs an 'hf://owner/repo' handle, got {handle!r}")
    try:
        validate_preset(preset_dir)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"refusing to upload {preset_dir} to {handle}: {err}") from err
    if _offline():
        raise PresetUnavailableError(f"cannot upload to {handle}: offline mode is on (HF_HUB_OFFLINE or KERASPOSE_OFFLINE)")

    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(endpoint=_hf_endpoint(endpoint), token=token)
    try:
        reason = _probe_hub(api, parsed.value, None, _timeout())
    except RepositoryNotFoundError:
        reason = None  # not created yet: that is what create_repo is for
    if reason is not None:
        raise PresetUnavailableError(f"cannot upload to {handle}: the Hub could not be reached ({reason})")
    api.create_repo(parsed.value, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=parsed.value,
        folder_path=os.fspath(preset_dir),
        repo_type="model",
        revision=parsed.revision,
        allow_patterns=list(PRESET_FILES),
        commit_message=commit_message or f"Upload keraspose preset {os.path.basename(os.path.abspath(preset_dir))}",
    )
    return getattr(info, "commit_url", None) or str(info)
