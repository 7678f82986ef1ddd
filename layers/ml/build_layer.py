"""Trim, byte-compile, smoke-test and size-check the built Lambda layer (called by the Makefile).

Usage: build_layer.py <layer>/python --arch x86_64|aarch64 [--functions <dir>]
       build_layer.py <layer>/python --print-arch
"""

from __future__ import annotations

import argparse
import ast
import filecmp
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

# Inputs to a C/Cython compiler (Cython sources and declarations, Tempita templates, C headers and
# sources, static libraries, pkg-config files): read only when building extensions against these
# packages, and nothing compiles on Lambda.
BUILD_ONLY_SUFFIXES = {".pyx", ".pxd", ".pxi", ".tp", ".h", ".hpp", ".c", ".cpp", ".a", ".pc"}
BUILD_ONLY_DIRS = ("numpy/_core/include", "numpy/_core/lib", "numpy/random/lib", "numpy/f2py/src")
# Whole subpackages that no remaining module imports: `check_unreferenced` proves it at every
# build (and fails it) by reading every import statement left in the layer and the functions.
# scipy: signal/odr/misc/datasets/fftpack/differentiate are imported by neither scikit-learn nor
# the scipy modules it uses (nor by us); _precompute holds scipy's own build-time scripts.
# sklearn/datasets data, descr and images: the toy datasets' files, read only by the load_*
# functions (by resource name, never imported); nothing here loads a toy dataset.
# Powertools: the utilities other than the event handler, logging, metrics, tracing and typing
# that the functions use.
UNUSED_PACKAGES = (
    "scipy/signal",
    "scipy/odr",
    "scipy/misc",
    "scipy/datasets",
    "scipy/fftpack",
    "scipy/differentiate",
    "scipy/special/_precompute",
    "sklearn/datasets/data",
    "sklearn/datasets/descr",
    "sklearn/datasets/images",
    "aws_lambda_powertools/metrics/provider/datadog",
    "aws_lambda_powertools/utilities/auth_alpha",
    "aws_lambda_powertools/utilities/batch",
    "aws_lambda_powertools/utilities/circuit_breaker",
    "aws_lambda_powertools/utilities/data_masking",
    "aws_lambda_powertools/utilities/feature_flags",
    "aws_lambda_powertools/utilities/idempotency",
    "aws_lambda_powertools/utilities/kafka",
    "aws_lambda_powertools/utilities/parameters",
    "aws_lambda_powertools/utilities/parser",
    "aws_lambda_powertools/utilities/streaming",
)
# Test suites shipped as modules of the package itself rather than in a tests/ folder: nothing
# imports them but their test runner (check_unreferenced proves it). ecdsa's are 0.76 MB with
# bytecode, more than the rest of it.
IN_PACKAGE_TESTS = ("ecdsa/test_*.py",)
# numpy imports before scipy can (scipy/__init__ imports numpy), and numpy's OpenBLAS loads its
# libgfortran/libquadmath, which the loader then reuses for any object needing the same SONAME.
# scipy.libs ships byte-identical copies under the same names: never loaded, so only the copies in
# scipy.libs go, and only when identical. (Deleting, never stripping, inside *.libs/.)
DEDUPLICATED_LIBS = ("scipy.libs", "numpy.libs")

SMOKE_TEST = """
import os, sys, time
t0 = time.perf_counter()
import numpy, scipy, sklearn, joblib, sklambda, aws_lambda_powertools, pydantic, ecdsa
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
seconds = time.perf_counter() - t0
# What the predict function imports from Powertools (the utilities left out must not be needed).
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
import sklambda.model, sklambda.request_formats, sklambda.training  # the rest needs botocore
app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(path="/swagger")
# Every scikit-learn module and every scipy subpackage left: none may miss a part of the layer
# (optional libraries that are not in the layer, such as torch or pytest, may be missing).
import contextlib, importlib, io, pkgutil, warnings
warnings.simplefilter("ignore")  # deprecated shims (sklearn.experimental...) say so on import
ours = {name.split(".")[0].split("-")[0] for name in os.listdir(sys.argv[1])}
names = [m.name for m in pkgutil.walk_packages(sklearn.__path__, "sklearn.")]
names += ["scipy." + m.name for m in pkgutil.iter_modules(scipy.__path__)]
for name in names:
    if ".tests" in name or name.endswith("conftest"):
        continue
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            importlib.import_module(name)
    except ModuleNotFoundError as exc:
        assert (exc.name or "").split(".")[0] not in ours, f"{name}: {exc}"
# A LAPACK call through scipy's own OpenBLAS, which now runs on numpy's copy of libgfortran
# (see DEDUPLICATED_LIBS).
import scipy.linalg, scipy.optimize
assert numpy.allclose(scipy.linalg.solve([[3.0, 1.0], [1.0, 2.0]], [9.0, 8.0]), [2.0, 3.0])
assert abs(scipy.optimize.minimize_scalar(lambda v: (v - 2.0) ** 2).x - 2.0) < 1e-6
root = os.path.realpath(sys.argv[1])
for module in (numpy, scipy, sklearn, joblib, sklambda, aws_lambda_powertools, pydantic, ecdsa):
    where = os.path.realpath(module.__file__)
    assert where.startswith(root), f"{module.__name__} imported from {where}, not the layer"
x = numpy.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [1.0, 3.0]])
model = make_pipeline(StandardScaler(), LinearRegression()).fit(x, x @ [2.0, -1.0] + 3.0)
predicted = model.predict([[1.0, 1.0]])[0]
assert abs(predicted - 4.0) < 1e-6, f"LinearRegression predicted {predicted}, expected 4.0"
# ECDSA P-256 as sklambda.signing verifies KMS's signatures (DER key and signature, SHA-256).
import hashlib
from ecdsa.util import sigdecode_der, sigencode_der
signing_key = ecdsa.SigningKey.generate(curve=ecdsa.NIST256p, hashfunc=hashlib.sha256)
public = ecdsa.VerifyingKey.from_der(signing_key.get_verifying_key().to_der())
signature = signing_key.sign(b"attestation", sigencode=sigencode_der)
assert public.verify(signature, b"attestation", hashfunc=hashlib.sha256, sigdecode=sigdecode_der)
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
    """Only what was shown safe: test suites, type stubs, build-time files, unused subpackages,
    duplicated vendored libraries, and symbols of the packages' own .so."""
    for tests in sorted(site.rglob("tests"), reverse=True):
        if tests.is_dir():
            shutil.rmtree(tests)
    for stub in site.rglob("*.pyi"):
        stub.unlink()
    for conftest in site.rglob("conftest.py"):  # pytest's, for the test suites removed above
        conftest.unlink()
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for folder in BUILD_ONLY_DIRS + UNUSED_PACKAGES:
        if (site / folder).is_dir():
            shutil.rmtree(site / folder)
    for module in [m for pattern in IN_PACKAGE_TESTS for m in site.glob(pattern)]:
        module.unlink()
    for path in [p for p in site.rglob("*") if p.suffix in BUILD_ONLY_SUFFIXES]:
        if path.is_file() and not any(part.endswith(".libs") for part in path.parts):
            path.unlink()
    deduplicate_libs(site)

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


IMPORT_CALLS = {"import_module", "__import__"}


def deduplicate_libs(site: Path) -> None:
    copies, keeper = site / DEDUPLICATED_LIBS[0], site / DEDUPLICATED_LIBS[1]
    for copy in sorted(copies.glob("*.so*")) if copies.is_dir() else []:
        original = keeper / copy.name
        if original.is_file() and filecmp.cmp(copy, original, shallow=False):
            copy.unlink()
            log(f"{copy.relative_to(site)}: identical to {original.relative_to(site)}, removed")


def imported_names(path: Path, module: str) -> set[str]:
    """Every module an import statement (anywhere in the file) or a literal
    importlib.import_module/__import__ call names, with relative imports resolved."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: max(0, package.count(".") + 2 - node.level)]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in IMPORT_CALLS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def check_unreferenced(site: Path, functions: Path | None) -> list[str]:
    """Which remaining files (layer and functions) import something UNUSED_PACKAGES or
    IN_PACKAGE_TESTS removed."""
    removed = tuple(folder.replace("/", ".") for folder in UNUSED_PACKAGES)
    test_modules = tuple(p.removesuffix("*.py").replace("/", ".") for p in IN_PACKAGE_TESTS)
    sources = [(p, ".".join(p.relative_to(site).with_suffix("").parts)) for p in site.rglob("*.py")]
    if functions is not None and functions.is_dir():
        sources += [(p, p.stem) for p in functions.glob("*/*.py")]
    problems = []
    for path, dotted in sources:
        for name in imported_names(path, dotted.removesuffix(".__init__")):
            if name.startswith(test_modules) or any(
                name == r or name.startswith(r + ".") for r in removed
            ):
                problems.append(f"{path}: imports {name}, which the trim removes")
    return problems


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
    problems = check_unreferenced(site, args.functions)
    if problems:
        for problem in problems:
            print(f"build_layer: ERROR: {problem}", file=sys.stderr)
        print("build_layer: ERROR: keep that package (UNUSED_PACKAGES)", file=sys.stderr)
        return 1

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
