"""Catalogs named by fsspec URL: the evaluation and the sweep read ``file://`` URLs like paths,
and a URL that cannot be read is one ``error:`` line that writes nothing."""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from catalogs.catalog import read_bars_frame
from catalogs.storage import catalog_at
from evaluation import cli
from runtime.run_config import load_run_config
from tests.conftest import BAR_TYPE


def snapshot(directory):
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


def test_a_file_url_reads_the_same_bars_as_its_path(synthetic_catalog):
    """`_catalog_bars` is where the evaluation and the sweep open the catalog."""
    url = synthetic_catalog.resolve().as_uri()
    assert url.startswith("file://")
    args = argparse.Namespace(config=None, catalog=url, bar_type=BAR_TYPE, start=None, end=None)
    bars, source = cli._catalog_bars(args, load_run_config(None))
    assert source == BAR_TYPE
    assert bars.equals(read_bars_frame(synthetic_catalog, BAR_TYPE))
    assert catalog_at(url) == synthetic_catalog.resolve()


@pytest.mark.parametrize(
    ("command", "url", "phrase"),
    [
        ([], "memory://catalog", "does not see fsspec's in-process memory"),
        ([], "nosuchprotocol://bucket/catalog", "Cannot reach the catalog nosuchprotocol://"),
        ([], "s3://no-such-bucket/catalog", "Cannot read the catalog s3://no-such-bucket/catalog"),
        (["sweep", "SPACE"], "memory://catalog", "does not see fsspec's in-process memory"),
        (["instruments"], "gs://bucket/catalog", "Cannot read the catalog gs://bucket/catalog"),
    ],
)
def test_an_unreadable_catalog_url_is_one_line_and_writes_nothing(
    tmp_path, capsys, command, url, phrase
):
    backend = {"s3": "s3fs", "gs": "gcsfs"}.get(url.split("://")[0])
    if backend and importlib.util.find_spec(backend):
        pytest.skip(f"{backend} is installed: the URL would be looked up on the network")
    space = tmp_path / "space.yaml"
    space.write_text("policy:\n  min_confidence: [0.5]\n")
    argv = [str(space) if arg == "SPACE" else arg for arg in command]
    before = snapshot(tmp_path)
    code = cli.main([*argv, "--catalog", url, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and phrase in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_instruments_refuse_a_catalog_the_backtest_cannot_read(tmp_path, capsys, monkeypatch):
    """An object-store URL the evaluation could read still cannot feed the Nautilus backtest."""
    monkeypatch.setattr("catalogs.storage.catalog_at", lambda location: object())
    code = cli.main(["instruments", "--catalog", "s3://bucket/catalog", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "the Nautilus backtest reads its catalog by path" in err, err
    assert "Traceback" not in err and not any(tmp_path.iterdir())
