"""Kubernetes credentials, found the standard ways, for the stage's one API client.

In order (as in-cluster operators do it, so a kubeconfig left in an image never beats
the pod's own identity):

1. **In-cluster**: the mounted service account (``token``, ``ca.crt``, ``namespace``)
   and ``KUBERNETES_SERVICE_HOST``/``_PORT``; the token file is re-read for every
   request (projected tokens rotate while the pod runs).
2. **kubeconfig**: ``$KUBECONFIG`` (a list of files, merged as kubectl merges them:
   the first file that names an entry wins) or ``~/.kube/config``; its current context
   (or the one asked for) gives the server, the CA (``certificate-authority`` or
   ``-data``, or ``insecure-skip-tls-verify``), the namespace and the user's
   ``token``/``tokenFile`` and/or ``client-certificate``/``client-key`` (files or
   ``-data``). Credential plugins (``exec``, ``auth-provider``) and basic auth are refused
   with a message saying so: sentinel runs no external programs to log in.

A configured API URL replaces the server, never the credentials.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sentinel.runbook.errors import ActionError

__all__ = ["Credentials", "KubeconfigError", "find", "from_kubeconfig", "in_cluster"]

TokenSource = Callable[[], str | None]


class KubeconfigError(ActionError):
    """No usable credentials: not in a cluster, no kubeconfig, or one sentinel cannot use."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where the API server is and how to prove who we are to it."""

    server: str
    token: TokenSource
    """Called for every request; None sends no Authorization header (client certificate)."""
    tls: ssl.SSLContext | bool
    """The TLS context (trusted CA, client certificate), or True for the system's CAs."""
    namespace: str | None
    """The namespace these credentials default to (the pod's, or the context's)."""
    origin: str
    """Where they came from, for messages: ``in-cluster`` or ``kubeconfig PATH (context)``."""


def _no_token() -> str | None:
    return None


def _file_token(path: Path) -> TokenSource:
    return lambda: path.read_text(encoding="utf-8").strip()


def in_cluster(sa_dir: Path, api_url: str | None = None) -> Credentials:
    """The pod's service account (the token file must exist)."""
    if api_url is None:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeconfigError(
                "not in a cluster: KUBERNETES_SERVICE_HOST is not set and no API URL given"
            )
        api_url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    ca = sa_dir / "ca.crt"
    tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
    try:
        namespace: str | None = (sa_dir / "namespace").read_text(encoding="utf-8").strip()
    except OSError:
        namespace = None
    return Credentials(api_url, _file_token(sa_dir / "token"), tls, namespace, "in-cluster")


def kubeconfig_paths() -> list[Path]:
    """``$KUBECONFIG``'s files, else ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def find(sa_dir: Path, api_url: str | None = None) -> Credentials:
    """In-cluster when the service account is mounted, else the kubeconfig."""
    if (sa_dir / "token").exists():
        return in_cluster(sa_dir, api_url)
    paths = [p for p in kubeconfig_paths() if p.exists()]
    if not paths:
        looked = ", ".join(str(p) for p in kubeconfig_paths())
        raise KubeconfigError(
            f"not in a cluster (no service-account token in {sa_dir}) and no kubeconfig "
            f"(looked at {looked}): mount a service account or set $KUBECONFIG"
        )
    return from_kubeconfig(paths, api_url=api_url)


def _load(paths: list[Path]) -> tuple[dict[str, Any], dict[str, dict[str, Path]]]:
    """The files merged (first wins per named entry) and each entry's file's folder
    (relative paths in a kubeconfig are relative to the file that holds them)."""
    merged: dict[str, Any] = {"clusters": {}, "contexts": {}, "users": {}}
    folders: dict[str, dict[str, Path]] = {k: {} for k in merged}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"kubeconfig {path}: cannot read: {exc}") from exc
        if not isinstance(doc, dict):
            raise KubeconfigError(f"kubeconfig {path}: not a mapping")
        if not merged.get("current-context"):
            merged["current-context"] = doc.get("current-context") or None
        for section, inner in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
            for entry in doc.get(section) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                if isinstance(name, str) and name not in merged[section]:
                    merged[section][name] = entry.get(inner) or {}
                    folders[section][name] = path.parent
    return merged, folders


def from_kubeconfig(
    paths: list[Path], context: str | None = None, api_url: str | None = None
) -> Credentials:
    """The credentials of ``context`` (default: current-context) in these kubeconfig files."""
    merged, folders = _load(paths)
    where = ", ".join(str(p) for p in paths)
    name = context or merged.get("current-context")
    if not name:
        raise KubeconfigError(f"kubeconfig {where}: no current-context set and none asked for")
    ctx = _entry(merged, "contexts", name, where)
    cluster_name, user_name = str(ctx.get("cluster", "")), str(ctx.get("user", ""))
    cluster = _entry(merged, "clusters", cluster_name, where)
    user = _entry(merged, "users", user_name, where) if user_name else {}
    server = api_url or cluster.get("server")
    if not server:
        raise KubeconfigError(f"kubeconfig {where}: cluster {cluster_name!r} has no server")
    origin = f"kubeconfig {where} (context {name})"
    cluster_dir = folders["clusters"][cluster_name]
    user_dir = folders["users"].get(user_name, cluster_dir)
    token, cert = _user_auth(user, user_name, user_dir, origin)
    tls = _tls(cluster, cluster_dir, cert, origin)
    namespace = str(ctx.get("namespace") or "default")
    return Credentials(str(server), token, tls, namespace, origin)


def _entry(merged: Mapping[str, Any], section: str, name: str, where: str) -> dict[str, Any]:
    found = merged[section].get(name)
    if not isinstance(found, dict):
        raise KubeconfigError(f"kubeconfig {where}: no {section[:-1]} named {name!r}")
    return found


def _user_auth(
    user: Mapping[str, Any], name: str, folder: Path, origin: str
) -> tuple[TokenSource, tuple[bytes, bytes] | None]:
    """The bearer token source and the client certificate (PEM cert, PEM key)."""
    for plugin in ("exec", "auth-provider"):
        if user.get(plugin):
            what = user[plugin].get("command") or user[plugin].get("name") or "?"
            raise KubeconfigError(
                f"{origin}: user {name!r} logs in through an {plugin} plugin ({what}), which "
                "sentinel does not run; give it a token, tokenFile or client certificate "
                "(e.g. a service account's)"
            )
    if user.get("username") or user.get("password"):
        raise KubeconfigError(f"{origin}: user {name!r} uses basic auth, which is not supported")
    token: TokenSource = _no_token
    if user.get("tokenFile"):
        token = _file_token(_resolve(folder, str(user["tokenFile"])))
    elif user.get("token"):
        static = str(user["token"])
        token = lambda: static  # noqa: E731 -- a constant source
    cert = _pem(user, "client-certificate", folder, origin)
    key = _pem(user, "client-key", folder, origin)
    if (cert is None) != (key is None):
        raise KubeconfigError(f"{origin}: user {name!r} has a client certificate without a key")
    pair = (cert, key) if cert is not None and key is not None else None
    if token is _no_token and pair is None:
        raise KubeconfigError(
            f"{origin}: user {name!r} has no token, tokenFile or client certificate"
        )
    return token, pair


def _resolve(folder: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else folder / p


def _pem(entry: Mapping[str, Any], field: str, folder: Path, origin: str) -> bytes | None:
    """``field-data`` (base64 PEM) or the file ``field`` names, as PEM bytes."""
    data = entry.get(f"{field}-data")
    try:
        if data:
            return base64.b64decode("".join(str(data).split()), validate=True)
        if entry.get(field):
            return _resolve(folder, str(entry[field])).read_bytes()
    except (binascii.Error, ValueError) as exc:
        raise KubeconfigError(f"{origin}: {field}-data is not base64") from exc
    except OSError as exc:
        raise KubeconfigError(f"{origin}: {field}: cannot read: {exc}") from exc
    return None


def _tls(
    cluster: Mapping[str, Any], folder: Path, cert: tuple[bytes, bytes] | None, origin: str
) -> ssl.SSLContext | bool:
    ca = _pem(cluster, "certificate-authority", folder, origin)
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    if ca is None and cert is None:
        return not insecure
    try:
        ctx = ssl.create_default_context(cadata=ca.decode("ascii") if ca else None)
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert is not None:
            _load_client_cert(ctx, *cert)
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise KubeconfigError(f"{origin}: bad certificate or key: {exc}") from exc
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads a client certificate only from files: write both to a private folder
    for the moment it takes (the context keeps them in memory), then remove them."""
    with tempfile.TemporaryDirectory(prefix="sentinel-kube-") as folder:
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        for path, data in ((cert_file, cert), (key_file, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        ctx.load_cert_chain(cert_file, key_file)
