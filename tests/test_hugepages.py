"""`training.hugepages`: training processes re-start once with glibc's huge-page tunable where it helps."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from training.hugepages import TUNABLE, transparent_huge_page_mode, wants_huge_pages

LINUX = ("Linux", ("glibc", "2.36"), "madvise")


def test_huge_pages_are_wanted_only_where_glibc_and_the_kernel_can_give_them():
    assert wants_huge_pages({}, *LINUX)
    assert wants_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, *LINUX)
    assert not wants_huge_pages({"GLIBC_TUNABLES": TUNABLE}, *LINUX)  # already restarted: no loop
    assert not wants_huge_pages({"FACELENS_HUGE_PAGES": "0"}, *LINUX)
    assert not wants_huge_pages({}, "Linux", ("glibc", "2.31"), "madvise")  # tunable unknown before 2.35
    assert not wants_huge_pages({}, "Linux", ("glibc", "2.36"), "never")
    assert not wants_huge_pages({}, "Linux", ("", ""), "always")  # musl
    assert not wants_huge_pages({}, "Darwin", ("", ""), "")


def test_the_kernels_mode_is_the_bracketed_word(tmp_path: Path):
    mode = tmp_path / "enabled"
    mode.write_text("always [madvise] never\n")
    assert transparent_huge_page_mode(mode) == "madvise"
    assert transparent_huge_page_mode(tmp_path / "missing") == ""


@pytest.mark.parametrize("opt_out", [False, True])
def test_the_process_restarts_with_the_tunable_set_and_the_same_command_line(opt_out: bool):
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "FACELENS_HUGE_PAGES")}
    if opt_out:
        env["FACELENS_HUGE_PAGES"] = "0"
    code = (
        "import os, sys; print('start', flush=True); from training.hugepages import restart_with_huge_pages; "
        "restart_with_huge_pages(); print(os.environ.get('GLIBC_TUNABLES', ''), sys.argv[1:])"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code, "--keep", "me"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    supported = wants_huge_pages(env, platform.system(), platform.libc_ver(), transparent_huge_page_mode())
    lines = result.stdout.splitlines()
    assert lines.count("start") == (2 if supported else 1)  # one re-exec at most
    assert lines[-1] == (f"{TUNABLE} ['--keep', 'me']" if supported else " ['--keep', 'me']")
