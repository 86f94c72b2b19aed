"""Lineage of an exported model: parent run from the warm-start source, written and read back."""

import json

from mtlrec.deploy.lineage import LINEAGE_FILE, Lineage, read_lineage


def _lineage(run_dir, warm_start):
    return Lineage.of_run(
        run_dir, warm_start, ("2026-01-27", "2026-01-31"), 1769817600000, "c" * 64, "i" * 64
    )


def test_the_parent_run_is_the_run_that_trained_the_warm_start_source(tmp_path):
    source = tmp_path / "w" / "runs" / "2026-01-30" / "train" / "model"
    lineage = _lineage(tmp_path / "w" / "runs" / "2026-01-31", {"source": str(source)})
    assert lineage.run_id == "2026-01-31"
    assert lineage.parent == str(source)
    assert lineage.parent_run_id == "2026-01-30"


def test_a_cold_start_or_a_model_kept_elsewhere_has_no_parent_run(tmp_path):
    assert _lineage(tmp_path / "r", None).parent is None
    assert _lineage(tmp_path / "r", {"source": None, "note": "cold"}).parent_run_id is None
    elsewhere = _lineage(tmp_path / "r", {"source": str(tmp_path / "models" / "m")})
    assert elsewhere.parent == str(tmp_path / "models" / "m")
    assert elsewhere.parent_run_id is None


def test_lineage_written_into_assets_extra_reads_back_as_written(tmp_path):
    version = tmp_path / "mtlrec_ranker" / "1"
    source = tmp_path / "w" / "runs" / "day-1" / "train" / "model"
    path = _lineage(tmp_path / "w" / "runs" / "day-2", {"source": str(source)}).write(version)
    assert path == version / "assets.extra" / LINEAGE_FILE
    assert (
        read_lineage(version)
        == json.loads(path.read_text())
        == {
            "run_id": "day-2",
            "parent": str(source),
            "parent_run_id": "day-1",
            "dates": ["2026-01-27", "2026-01-31"],
            "split_ts": 1769817600000,
            "config_sha256": "c" * 64,
            "input_sha256": "i" * 64,
        }
    )
    assert read_lineage(tmp_path / "no-model") == {}
