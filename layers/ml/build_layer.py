"""Trim, byte-compile, smoke-test and size-check the built Lambda layer (called by the Makefile).

Usage: build_layer.py <layer>/python --arch x86_64|aarch64 [--functions <dir>]
       build_layer.py <layer>/python --print-arch
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
import time
from email.parser import BytesParser
from pathlib import Path

LAMBDA_LIMIT = 262_144_000  # function + all its layers, unzipped
TARGET = 199_229_440  # 190 MiB: our own budget, leaves room for function code and growth
MIB = 1024 * 1024
# In the Lambda python3.12 runtime already; a second botocore in the layer would shadow boto3's.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six"}

SMOKE_TEST = """
import os, sys, time
t0 = time.perf_counter()
import numpy, scipy, sklearn, joblib, sklambda, aws_lambda_powertools, pydantic
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
seconds = time.perf_counter() - t0
root = os.path.realpath(sys.argv[1])
for module in (numpy, scipy, sklearn, joblib, sklambda, aws_lambda_powertools, pydantic):
    where = os.path.realpath(module.__file__)
    assert where.startswith(root), f"{module.__name__} imported from {where}, not the layer"
x = numpy.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [1.0, 3.0]])
model = make_pipeline(StandardScaler(), LinearRegression()).fit(x, x @ [2.0, -1.0] + 3.0)
predicted = model.predict([[1.0, 1.0]])[0]
assert abs(predicted - 4.0) < 1e-6, f"LinearRegression predicted {predicted}, expected 4.0"
print(f"build_layer: smoke test passed (imports {seconds:.2f} s, sklearn {sklearn.__version__})")
"""


def log(message: str) -> None:
    print(f"build_layer: {message}", flush=True)


def loud(message: str) -> None:
    bar = "!" * 78
    print(f"{bar}\nbuild_layer: WARNING: {message}\n{bar}", flush=True)


def tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() or p.is_symlink())


def missing_dependencies(site: Path, arch: str) -> list[str]:
    """pip ran with --no-deps (so botocore stays the runtime's); check the pins are complete."""
    # pip's own copy of packaging: pip is certainly here (it just ran), packaging may not be.
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

    target = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux"}
    target |= {"platform_system": "Linux", "platform_machine": arch, "extra": ""}
    dists = [BytesParser().parsebytes(p.read_bytes()) for p in site.glob("*.dist-info/METADATA")]
    installed = {canonicalize_name(d["Name"]): d["Version"] for d in dists}
    problems = []
    for dist in dists:
        for line in dist.get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(target):
                continue
            have = installed.get(canonicalize_name(req.name))
            if have is None and canonicalize_name(req.name) not in RUNTIME_PROVIDED:
                problems.append(f"{dist['Name']} needs {req}, which is not pinned")
            elif have is not None and not req.specifier.contains(have, prereleases=True):
                problems.append(f"{dist['Name']} needs {req}, but {req.name} {have} is pinned")
    return sorted(set(problems))


def trim(site: Path, arch: str) -> None:
    """Only what was shown safe: test suites, type stubs, and symbols of the packages' own .so."""
    for tests in sorted(site.rglob("tests"), reverse=True):
        if tests.is_dir():
            shutil.rmtree(tests)
    for stub in site.rglob("*.pyi"):
        stub.unlink()
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)

    # The host's strip rejects foreign objects; a cross binutils (apt: binutils-<arch>-linux-gnu)
    # handles them.
    strip = shutil.which(f"{arch}-linux-gnu-strip") or shutil.which("strip")
    if strip is None:
        log("no `strip` on PATH: shared objects left unstripped")
        return
    # Vendored libraries in *.libs/ (openblas, gfortran...) break when stripped: scipy fails.
    objects = [
        so
        for so in site.rglob("*.so*")
        if (so.suffix == ".so" or ".so." in so.name)
        and so.is_file()
        and not any(part.endswith(".libs") for part in so.parts)
    ]
    failed = [so for so in objects if not _strip(strip, so)]
    log(f"stripped {len(objects) - len(failed)} of {len(objects)} .so files outside *.libs/")
    if failed:  # e.g. the host's strip does not understand aarch64 objects: harmless, just bigger
        log(f"strip failed on {len(failed)} files (first: {failed[0].name}); left as they are")


def _strip(strip: str, so: Path) -> bool:
    return (
        subprocess.run(
            [strip, "--strip-unneeded", str(so)], capture_output=True, check=False
        ).returncode
        == 0
    )


def find_python312() -> str | None:
    """A working CPython 3.12: $PYTHON312, python3.12 on PATH, or a pyenv install."""
    candidates = [os.environ.get("PYTHON312", ""), shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates += sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12"))
    for exe in filter(None, candidates):
        # A pyenv shim exists on PATH even when 3.12 is not selected, and then fails: run it.
        probe = subprocess.run(
            [exe, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.split() == ["cpython", "3", "12"]:
            return exe
    return None


def compile_bytecode(python312: str, site: Path) -> None:
    # unchecked-hash: /opt is read-only on Lambda, and a checked .pyc would re-hash its source on
    # every import. -p makes tracebacks show the paths the layer has on Lambda.
    started = time.perf_counter()
    subprocess.run(
        [python312, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
        + ["-s", str(site), "-p", "/opt/python", str(site)],
        check=True,
    )
    log(f"bytecode compiled with {python312} in {time.perf_counter() - started:.1f} s")


def smoke_test(python312: str, site: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    # cwd: `python -c` puts it first on sys.path, and the scratch dir holds sklambda sources.
    subprocess.run(
        [python312, "-s", "-c", SMOKE_TEST, str(site)], env=env, cwd=site.parent, check=True
    )


def largest_function(functions: Path | None) -> tuple[str, int]:
    """What the functions' Makefiles copy (their *.py); each ships with this whole layer."""
    sizes = [
        (d.name, sum(p.stat().st_size for p in d.glob("*.py")))
        for d in (sorted(functions.iterdir()) if functions and functions.is_dir() else [])
        if d.is_dir()
    ]
    return max(sizes, key=lambda item: item[1], default=("(none found)", 0))


def sam_architecture(layer: Path) -> str:
    """The layer's architecture as `sam build` resolved it (BuildArchitecture: !Ref Architecture).

    SAM hands a Makefile build nothing but ARTIFACTS_DIR (<build dir>/<LayerId>); it does write
    its build graph, with each definition's architecture, next to the build dir beforehand.
    """
    try:
        import tomllib

        graph = tomllib.loads((layer.parent.parent / "build.toml").read_text())
    except (ImportError, OSError, ValueError):
        return "x86_64"
    for definition in graph.get("layer_build_definitions", {}).values():
        if definition.get("layer") == layer.name:
            return "aarch64" if definition.get("architecture") == "arm64" else "x86_64"
    return "x86_64"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the layer's python/ folder")
    parser.add_argument("--arch", choices=["x86_64", "aarch64"], default="x86_64")
    parser.add_argument("--functions", type=Path, help="folder holding the functions' code")
    parser.add_argument("--print-arch", action="store_true", help="print SAM's arch for pip")
    args = parser.parse_args()
    site: Path = args.site.resolve()
    layer = site.parent
    if args.print_arch:
        print(sam_architecture(layer))
        return 0

    log(f"installed: {tree_bytes(layer):,} bytes")
    problems = missing_dependencies(site, args.arch)
    if problems:
        for problem in problems:
            print(f"build_layer: ERROR: {problem}", file=sys.stderr)
        print(
            "build_layer: ERROR: add the missing packages, pinned, to layers/ml/requirements*.txt",
            file=sys.stderr,
        )
        return 1
    trim(site, args.arch)
    log(f"trimmed: {tree_bytes(layer):,} bytes")

    python312 = find_python312()
    if python312 is None:
        loud(
            "no Python 3.12 found (python3.12 on PATH, ~/.pyenv/versions/3.12*, $PYTHON312): "
            "the layer has NO bytecode, so cold starts import ~3x slower, and the import smoke "
            "test is SKIPPED. Install Python 3.12 or set PYTHON312 and rebuild."
        )
    else:
        compile_bytecode(python312, site)
        machine = platform.machine().lower()
        host = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
        if host == args.arch:
            smoke_test(python312, site)
        else:
            log(f"smoke test skipped: layer is {args.arch}, this machine is {host}")

    size = tree_bytes(layer)
    name, code = largest_function(args.functions)
    log(f"layer unzipped: {size:,} bytes ({size / MIB:.1f} MiB)")
    log(f"largest function code ({name}): {code:,} bytes")
    total = size + code
    if total > LAMBDA_LIMIT:
        print(
            f"build_layer: ERROR: layer + function code = {total:,} bytes, over Lambda's "
            f"{LAMBDA_LIMIT:,}-byte unzipped limit; deployment would fail",
            file=sys.stderr,
        )
        return 1
    if size > TARGET:
        loud(f"layer is {size:,} bytes, over the {TARGET:,}-byte (190 MiB) target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
