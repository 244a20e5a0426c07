"""Atomic output: validated, restrictive permissions, no temporary file left, damaged outputs set aside."""
import os
import stat
from datetime import datetime, timezone

import pytest

from extractor.write import DamagedOutput, read_synthesis, set_aside_damaged, write_synthesis
from models.synthesis import Synthesis


def synth():
    return Synthesis(dossier_id="P1", generated_at=datetime.now(timezone.utc), extractor_version="t")


def test_write_is_atomic_with_restrictive_mode(tmp_path):
    p = write_synthesis(tmp_path, synth(), 0o640)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["synthese.json"]
    assert read_synthesis(tmp_path).dossier_id == "P1"


def test_damaged_output_is_detected_and_kept_aside(tmp_path):
    (tmp_path / "synthese.json").write_text('{"dossier_id": "P1", "history": [')
    with pytest.raises(DamagedOutput):
        read_synthesis(tmp_path)
    aside = set_aside_damaged(tmp_path)
    assert aside.name == "synthese.damaged-1.json"
    assert aside.read_text().startswith('{"dossier_id"')
    assert read_synthesis(tmp_path) is None


def test_a_run_meeting_a_damaged_synthesis_keeps_it_aside_and_says_so(tmp_path):
    from extractor.config import Settings
    from extractor.pipeline import summarise_dossier

    damaged = '{"dossier_id": "P1", "history": [{"label": "HTA", "review": {"status": "validated"'
    (tmp_path / "synthese.json").write_text(damaged)
    s = summarise_dossier(tmp_path, "P1", [], Settings())
    assert [w.code for w in s.warnings] == ["damaged_output"]
    assert "synthese.damaged-1.json" in s.warnings[0].message
    assert (tmp_path / "synthese.damaged-1.json").read_text() == damaged  # the reviewer's work is not lost
    assert read_synthesis(tmp_path).dossier_id == "P1"
