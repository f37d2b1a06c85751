"""Let glibc back training's large buffers with transparent huge pages, on Linux.

Why: TensorFlow's convolutions allocate and free large GEMM packing buffers every step, and glibc returns
such memory to the kernel, which faults it back in 4 KiB at a time: measured ~200,000 page faults a second
during `facelens train` (`perf record -e page-faults`: Eigen's gemm packing in the convolution backprop),
about a core's worth of kernel time on the 2-core VM. glibc 2.35+ can ask for
huge pages on those mappings (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`), but only if the variable is set
when the process starts, hence one re-exec of the same command line. Measured here: two 30-batch epochs
of the wide multi-task gender network 137 s -> 83 s (`facelens train gender --arch facelens_rgb_wide
--aux race,age --limit 3840 --epochs 2 --threads 2`). Set FACELENS_HUGE_PAGES=0 to opt out.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb=1"
THP_MODE_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MIN_GLIBC = (2, 35)


def transparent_huge_page_mode(path: Path = THP_MODE_FILE) -> str:
    """The kernel's THP mode (`always`, `madvise` or `never`; '' where the kernel does not say)."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else ""


def wants_huge_pages(env: Mapping[str, str], system: str, libc: tuple[str, str], thp_mode: str) -> bool:
    """Whether re-starting with the glibc tunable can help: glibc new enough, THP not off, not yet set,
    and not opted out."""
    name, version = libc
    try:
        glibc = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (
        system == "Linux"
        and name == "glibc"
        and glibc >= MIN_GLIBC
        and thp_mode in ("always", "madvise")
        and "glibc.malloc.hugetlb" not in env.get("GLIBC_TUNABLES", "")
        and env.get("FACELENS_HUGE_PAGES", "1") != "0"
    )


def restart_with_huge_pages() -> None:
    """Re-run this very command line with the tunable set, when it helps; otherwise return and go on.

    Call it first thing in a process's entry point only (never from library code: it replaces the process)."""
    if not wants_huge_pages(os.environ, platform.system(), platform.libc_ver(), transparent_huge_page_mode()):
        return
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = ":".join(part for part in (env.get("GLIBC_TUNABLES", ""), TUNABLE) if part)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError:
        return  # could not re-exec (odd launcher): train at the normal speed
