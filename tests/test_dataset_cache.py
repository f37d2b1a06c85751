"""The parsed-dataset cache: reused while its source is unchanged, rebuilt (and the stale copy removed) when
the source changes, and never trusted when broken."""

import os

import numpy as np

from training.data.cache import cache_dir, cached_arrays


def test_cache_is_reused_then_replaced_not_accumulated_when_the_source_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELENS_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "faces.csv"
    source.write_text("a")
    builds = []

    def build():
        builds.append(1)
        return {"x": np.arange(len(builds) * 3)}

    legacy = cache_dir() / "faces-0123456789abcdef.npz"  # the old one-key format, unreadable by this code
    legacy.parent.mkdir(parents=True)
    np.savez(legacy, x=np.zeros(1))
    assert cached_arrays(source, "faces", build, ["x"])[0].tolist() == [0, 1, 2]
    assert not legacy.exists()
    assert cached_arrays(source, "faces", build, ["x"])[0].tolist() == [0, 1, 2] and len(builds) == 1

    os.utime(source, ns=(0, source.stat().st_mtime_ns + 10**9))  # copied in again: same bytes, new mtime
    assert len(cached_arrays(source, "faces", build, ["x"])[0]) == 6 and len(builds) == 2
    assert len(list(cache_dir().glob("faces-*.npz"))) == 1  # the stale version is gone

    other = tmp_path / "other.csv"
    other.write_text("b")
    cached_arrays(other, "faces", build, ["x"])
    assert len(list(cache_dir().glob("faces-*.npz"))) == 2  # another source's cache is left alone

    broken = next(p for p in cache_dir().glob("faces-*.npz") if len(np.load(p)["x"]) == 6)
    broken.write_bytes(b"not an npz")
    assert len(cached_arrays(source, "faces", build, ["x"])[0]) == 12 and len(builds) == 4
