"""Starting a controller: the journal is replayed once per start."""
from __future__ import annotations

import textwrap

from hpc_tune.controller import launcher
from hpc_tune.journal import Journal, load_view
from hpc_tune.spec import load_spec
from hpc_tune.study import create_study


def test_a_start_replays_the_journal_once(tmp_path, monkeypatch):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent("""
        hptuning:
          concurrency: 2
          matrix:
            x: {values: [1, 2]}
        run:
          cmd: "true"
    """))
    study_dir = create_study(str(path), load_spec(str(path)), str(tmp_path / "state"), backend="local", seed=1)
    Journal(study_dir).append(*[{"e": "trial", "id": i, "params": {"x": i}, "resource": None, "meta": {}}
                                for i in range(2)],
                              *[{"e": "end", "id": i, "state": "completed", "value": None} for i in range(2)])
    from_start = []
    scan = Journal.scan

    def counting_scan(self, offset, handle, *a, **kw):
        if offset == 0:
            from_start.append(self.path)
        return scan(self, offset, handle, *a, **kw)

    monkeypatch.setattr(Journal, "scan", counting_scan)
    monkeypatch.setattr(launcher, "_setup_logging", lambda paths: None)
    monkeypatch.setattr(launcher.Controller, "install_signal_handlers", lambda self: None)
    end = launcher.run_controller(study_dir)
    assert end["state"] == "finished"
    assert len(from_start) == 1
    assert load_view(study_dir).ended["state"] == "finished"
