"""Registry downloads and small file helpers shared by the data room.

Only the package registries are used: PyPI through `pip download --no-deps` and Debian through
`apt-get download`; Debian packages are read with `dpkg-deb` without installing them (R is never
needed). Every download is cached in a folder so later runs work offline.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable



class RegistryError(RuntimeError):
    """A registry download failed; the message names the package and the command."""


# ---------------------------------------------------------------------- small file helpers
def _run(cmd: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise RegistryError(f"{what}: `{cmd[0]}` is not installed ({e}); this step needs "
                            f"Debian's apt/dpkg tools") from e
    return proc


def _fail(what: str, cmd: list[str], proc: subprocess.CompletedProcess, dest: Path) -> RegistryError:
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
    return RegistryError(f"{what}: `{' '.join(cmd)}` failed (exit {proc.returncode}): "
                         f"{' / '.join(tail)}. Is the package registry reachable? Once the file is "
                         f"in {dest} the command works offline.")


# ---------------------------------------------------------------------- registry downloads
def pip_download(name: str, version: str, dest: str | Path, log=print) -> Path:
    """`pip download --no-deps NAME==VERSION` into `dest` (reused when already there).

    The wheel is pinned to CPython 3.11 manylinux so every machine gets the same file.
    """
    dest = Path(dest)
    stem = re.sub(r"[-_.]+", "_", name).lower()
    found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if found:
        log(f"  {name}=={version}: cached {found[0].name}")
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
               "--platform", "manylinux2014_x86_64", "--platform", "any",
               "--disable-pip-version-check", "-q", f"{name}=={version}", "-d", tmp]
        log(f"  {name}=={version}: pip download --no-deps")
        proc = _run(cmd, f"downloading {name}=={version} from PyPI")
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise _fail(f"downloading {name}=={version} from PyPI", cmd, proc, dest)
        target = dest / wheels[0].name
        os.replace(wheels[0], target)
    return target


def apt_download(package: str, dest: str | Path, log=print) -> Path:
    """`apt-get download PACKAGE` into `dest` (reused when a .deb is already there).

    Runs `apt-get update` once and retries when apt does not know the package yet.
    """
    dest = Path(dest)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if found:
        log(f"  {package}: cached {found[-1].name}")
        return found[-1]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", package]
        log(f"  {package}: apt-get download")
        proc = _run(cmd, f"downloading Debian package {package}", cwd=Path(tmp))
        if proc.returncode != 0 and re.search(r"Unable to locate|no installation candidate",
                                              proc.stderr + proc.stdout):
            log("  apt does not know it yet: apt-get update")
            _run(["apt-get", "-q", "update"], "apt-get update")
            proc = _run(cmd, f"downloading Debian package {package}", cwd=Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise _fail(f"downloading Debian package {package}", cmd, proc, dest)
        target = dest / debs[0].name
        os.replace(debs[0], target)
    return target


def deb_info(deb: str | Path) -> dict[str, str]:
    """Control fields of a .deb (Package, Version) via `dpkg-deb -f`."""
    cmd = ["dpkg-deb", "-f", str(deb), "Package", "Version"]
    proc = _run(cmd, f"reading {deb}")
    if proc.returncode != 0:
        raise _fail(f"reading {deb}", cmd, proc, Path(deb).parent)
    return dict(line.split(": ", 1) for line in proc.stdout.strip().splitlines())


def extract_from_deb(deb: str | Path, suffixes: Iterable[str], dest: str | Path,
                     log=print) -> dict[str, Path]:
    """Extract the members whose paths end with each suffix into `dest`/<deb stem>/.

    Streams `dpkg-deb --fsys-tarfile` (any compression) and keeps only those members, so the
    R package itself is never unpacked. Reuses files already extracted. Returns {suffix: path}.
    """
    deb, suffixes = Path(deb), list(suffixes)
    out_dir = Path(dest) / deb.stem
    paths = {s: out_dir / Path(s).name for s in suffixes}
    if all(p.exists() for p in paths.values()):
        return paths
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"  extracting {', '.join(Path(s).name for s in suffixes)} from {deb.name}")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                hit = next((s for s in suffixes if member.name.endswith(s)), None)
                if hit is None or not member.isfile():
                    continue
                tmp = paths[hit].with_name(paths[hit].name + ".part")
                with tar.extractfile(member) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(tmp, paths[hit])
    finally:
        proc.stdout.close()
        proc.wait()
    missing = [s for s, p in paths.items() if not p.exists()]
    if missing:
        raise RegistryError(f"{deb}: no member ending with {missing}; the package layout "
                            f"changed or the file is damaged (delete it and rerun)")
    return paths


def r_description_licence(description: str | Path) -> str:
    """The `License:` field of an R package DESCRIPTION file."""
    for line in Path(description).read_text(encoding="utf-8").splitlines():
        if line.startswith("License:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"{description}: no License field")
