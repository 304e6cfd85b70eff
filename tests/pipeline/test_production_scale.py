"""Productions at scale: run lists, several generators, planning 10^4 chunks, batch-cluster
configuration, failure classes and per-chunk sanity checks (no task is executed here)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from km3sim.errors import ConfigError, StageError, StageFileError
from km3sim.pipeline.config import load_production
from km3sim.pipeline.plan import EVENTS_PER_RUN_MAX, GENERATOR_STRIDE, plan_production
from km3sim.table import Table
from tests.conftest import SMALL_STAGES, write_small_production

NU_CONFIG = "{flavours: [14, -14], n_events: 30, energy_min_gev: 10, energy_max_gev: 1000, can_margin_m: 60}"


def _multi(tmp_path: Path, extra_gen: str = "", stages: str | None = None) -> Path:
    proc = stages if stages is not None else "\n".join(SMALL_STAGES.splitlines()[2:]) + "\n"
    text = textwrap.dedent(f"""\
        name: multi
        seed: 99
        output: {tmp_path / 'out'}
        detector: {{builder: orca, n_dus: 3}}
        runs:
          - {{run_id: 11, livetime_s: 1.0}}
          - {{run_id: 12, livetime_s: 0.5}}
        livetime_factor: 3
        chunk_size: 20
        generators:
          mupage: {{stage: atmospheric_muons, config: {{energy_min_gev: 10, can_margin_m: 100}}}}
          numu: {{stage: neutrinos, chunk_size: 7, livetime_factor: 1, config: {NU_CONFIG}}}
        """) + extra_gen + "stages:\n" + proc
    p = tmp_path / "multi.yaml"
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------ runs
def test_runs_from_csv_with_start_time_and_run_detector(tmp_path):
    from km3sim.detector.geometry import build_orca_block
    from km3sim.io.detx import write_detx

    det2 = tmp_path / "calib" / "two_dus.detx"
    det2.parent.mkdir()
    write_detx(build_orca_block(n_dus=2), det2)
    (tmp_path / "runs.csv").write_text(
        "# run list\n"
        "run_id,livetime_s,start_time,detector\n"
        "3,1.0,2024-03-01T12:00:00Z,\n"
        "5,0.5,,calib/two_dus.detx\n"
    )
    p = write_small_production(tmp_path, runs="runs: {file: runs.csv}\n")
    prod = load_production(p)
    runs = prod.run_list()
    assert [r.run_id for r in runs] == [3, 5] and runs[1].detector == det2.resolve()
    assert runs[0].start_utc_s == 1709294400.0 and runs[1].start_utc_s is None
    plan = plan_production(prod)
    t3, t5 = (plan.chunk_tasks(u)[3] for u in plan.units() if u.chunk == 0)
    assert t3.detector_file != t5.detector_file and t5.detector_file == str(det2.resolve())
    assert t3.detector_hash != t5.detector_hash
    assert t3.run_start_utc_s == 1709294400.0


def test_runs_file_errors_name_file_and_line(tmp_path):
    (tmp_path / "runs.csv").write_text("run_id,livetime_s\n3,1.0\n5,-2\n")
    p = write_small_production(tmp_path, runs="runs: {file: runs.csv}\n")
    with pytest.raises(ConfigError, match=r"runs\.csv:3: livetime_s"):
        load_production(p)
    (tmp_path / "runs.csv").write_text("run_id,livetime\n3,1.0\n")
    with pytest.raises(ConfigError, match=r"runs\.csv:1: the header"):
        load_production(p)
    (tmp_path / "runs.csv").write_text("run_id,livetime_s\n3,1.0\n3,2.0\n")
    with pytest.raises(ConfigError, match=r"repeated: \[3\]"):
        load_production(p)
    p = write_small_production(tmp_path, runs="runs:\n  - {run_id: 3, conditions: nowhere.h5}\n")
    with pytest.raises(ConfigError, match=r"runs\[0\]\.conditions: run 3: file 'nowhere.h5' does not exist"):
        load_production(p)
    p = write_small_production(tmp_path, runs="runs:\n  - {run_id: 3}\n")
    with pytest.raises(ConfigError, match="give livetime_s"):
        load_production(p)


def test_run_conditions_from_real_summaryslices(tmp_path):
    """A run given by its summaryslices (ORCA6, run 8456): livetime and start time come from
    them, they are converted once into the output, and pmt_response reads them."""
    km3net_testdata = pytest.importorskip("km3net_testdata")
    detx = km3net_testdata.data_path("detx/D_ORCA006_t.A02181836.p.A02181837.r.A02182001.detx")
    summ = km3net_testdata.data_path("online/KM3NeT_00000049_00008456.summaryslice-167941.root")
    p = write_small_production(tmp_path, runs=f"runs:\n  - {{run_id: 8456, conditions: {summ}}}\n")
    p.write_text(p.read_text().replace("{builder: orca, n_dus: 3}", f"{{file: {detx}}}").replace(
        "livetime_factor: 1", "livetime_factor: 10"))
    plan = plan_production(load_production(p))
    rp = plan.runs[0]
    # one summaryslice of 100 ms, starting at the frame's UTC time (read independently below)
    assert rp.livetime_s == pytest.approx(0.1)
    from km3sim.detector.conditions import RunConditions

    cond = RunConditions.from_daq([summ])
    assert rp.start_utc_s == pytest.approx(cond.utc_start_s)
    assert rp.conditions.is_file() and rp.conditions.parent == tmp_path / "out" / "conditions"
    assert rp.conditions_source == str(Path(summ).resolve()) or rp.conditions_source == summ
    tasks = plan.chunk_tasks(next(plan.units()))
    pmt = next(t for t in tasks if t.stage_name == "pmt_response")
    assert pmt.config["conditions"] == str(rp.conditions)
    assert "conditions" not in tasks[0].config  # only stages that have the key get it
    assert pmt.livetime_s == pytest.approx(1.0)  # 10 x the data livetime


# ------------------------------------------------------------------------------------ generators
def test_several_generators_each_with_its_chunking(tmp_path):
    prod = load_production(_multi(tmp_path))
    streams = prod.streams()
    assert [(s.label, s.index, s.chunk_size, s.livetime_factor) for s in streams] == [
        ("mupage", 0, 20, 3.0), ("numu", 1, 7, 1.0)]
    plan = plan_production(prod)
    units = list(plan.units())
    # units in event_id order: run, then generator, then chunk
    firsts = [plan.chunk_tasks(u)[0].event_ids()[:1] for u in units if u.n_events]
    firsts = np.concatenate(firsts)
    assert np.all(np.diff(firsts) > 0)
    nu = [u for u in units if u.stream == 1]
    assert len(nu) == 2 * 5 and max(u.n_events for u in nu) == 7  # 30 events in chunks of 7
    t = plan.chunk_tasks(nu[0])
    assert t[0].stage_name == "neutrinos" and [x.stage_name for x in t[1:]] == ["muon_propagation", "direct_light",
                                                                               "pmt_response"]
    assert t[0].event_ids()[0] == 11 * EVENTS_PER_RUN_MAX + GENERATOR_STRIDE
    assert t[0].key == "neutrinos-run11-g1-chunk0" and t[0].output.endswith("neutrinos/run00000011_g1_chunk00000.h5")
    mu = plan.chunk_tasks(units[0])
    assert mu[0].livetime_s == pytest.approx(3.0) and t[0].livetime_s == pytest.approx(1.0)
    assert mu[1].output.endswith("muon_propagation/run00000011_g0_chunk00000.h5")
    # every output file and key is distinct
    tasks = list(plan.iter_tasks())
    assert len({x.output for x in tasks}) == len({x.key for x in tasks}) == len(tasks) == plan.n_tasks


def test_generator_configuration_errors(tmp_path):
    p = _multi(tmp_path, stages="  - neutrinos: {}\n  - muon_propagation: {}\n")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.neutrinos: generators go in 'generators:'"):
        load_production(p)
    p = _multi(tmp_path, stages="  - pmt_response: {}\n")
    with pytest.raises(ConfigError, match=r"needs table 'mc_hits', which neither generator 'mupage'"):
        load_production(p)
    p = _multi(tmp_path, extra_gen="  bad: {stage: atmospheric_muons, config: {energy_min: 3}}\n")
    with pytest.raises(ConfigError, match=r"generators\.bad\.config\.energy_min: unknown key"):
        load_production(p)


def test_file_generator_after_another_generator_reads_its_own_events(tmp_path):
    """generator_files as the second generator: its events are numbered from 10^8 in each run
    and still read from the start of the files (StageContext.event_positions)."""
    import km3net_testdata

    from km3sim.generators.files import GeneratorFiles
    from km3sim.pipeline.runner import run_production
    from km3sim.stage import StageContext

    evt = km3net_testdata.data_path("gseagen/gseagen_v7.0.0_numuCC_diffuse.evt")
    p = _multi(tmp_path, extra_gen=f"  files: {{stage: generator_files, chunk_size: 50, config: {{files: [{evt}]}}}}\n",
               stages="  - muon_propagation: {can_margin_m: 100}\n")
    prod = load_production(p)
    assert run_production(prod).ok
    out = tmp_path / "out" / "generator_files"
    from km3sim.io.hdf5 import read_stage_file

    tracks = Table.concat([read_stage_file(f, ["mc_tracks"])[0]["mc_tracks"] for f in sorted(out.glob("run00000012_g2_chunk*.h5"))])
    ids = np.unique(np.asarray(tracks["event_id"]))
    gen = GeneratorFiles(GeneratorFiles.Config(files=[evt]))
    assert len(ids) == gen.n_events == 82
    assert ids[0] == 12 * EVENTS_PER_RUN_MAX + 2 * GENERATOR_STRIDE
    # the same events as the generator gives for positions 0..81 (generators need no detector here)
    ctx = StageContext(seed=1, run_id=12, chunk=0, stage_name="generator_files", event_ids=ids,
                       livetime_s=1.0, n_events_run=82, detector=prod_detector(prod), event_offset=2 * GENERATOR_STRIDE)
    ref = gen.run({}, ctx)["mc_tracks"]
    np.testing.assert_array_equal(np.asarray(ref["event_id"]), np.asarray(tracks["event_id"]))
    np.testing.assert_allclose(np.asarray(ref["energy"]), np.asarray(tracks["energy"]))
    # out of range positions are refused with the file count
    bad = StageContext(seed=1, run_id=12, chunk=0, stage_name="generator_files", event_ids=ids + 1,
                       livetime_s=1.0, n_events_run=82, detector=prod_detector(prod), event_offset=2 * GENERATOR_STRIDE)
    with pytest.raises(StageError, match="the files hold 82"):
        gen.run({}, bad)


def prod_detector(prod):
    from km3sim.detector.geometry import build_orca_block

    return build_orca_block(n_dus=3)


# ------------------------------------------------------------------------------------ scale
def test_planning_ten_thousand_chunks_is_lazy_and_consistent(tmp_path):
    """2000 runs x 5 chunks: tasks are made chunk by chunk, each with a distinct output, key and
    event range; the chain hash depends on the chunk and not on the order of planning."""
    p = write_small_production(
        tmp_path, runs="runs: {first_run_id: 100, n_runs: 2000, livetime_s: 60}\n", chunk_size=10,
        stages="stages:\n  - neutrinos: {n_events: 50}\n  - muon_propagation: {}\n")
    plan = plan_production(load_production(p))
    assert plan.n_chunks == 10_000 and plan.n_tasks == 20_000
    assert "tasks" not in plan.__dict__  # nothing materialised yet
    keys, outputs, hashes = set(), set(), set()
    n = 0
    for t in plan.iter_tasks():
        keys.add(t.key), outputs.add(t.output), hashes.add(t.chain_hash)
        n += 1
    assert n == len(keys) == len(outputs) == len(hashes) == 20_000
    # the same chunk planned again (another plan object) gets the same chain hash
    again = plan_production(load_production(p))
    u = list(again.units())[7777]
    assert [t.chain_hash for t in again.chunk_tasks(u)] == [t.chain_hash for t in plan.chunk_tasks(u)]


# ------------------------------------------------------------------------------------ cluster
def _cluster(type_: str, **jobqueue):
    from km3sim.pipeline.config import ClusterSpec

    return ClusterSpec.model_validate({"type": type_, "workers": 4, "jobqueue": jobqueue})


def test_jobqueue_translation_without_a_batch_system():
    from km3sim.pipeline.cluster import jobqueue_arguments

    name, kw = jobqueue_arguments(_cluster("slurm", cores=2, memory="8GB", queue="short", account="km3net",
                                           walltime="02:00:00", job_script_prologue=["module load apptainer"]))
    assert name == "SLURMCluster"
    assert kw["cores"] == 2 and kw["memory"] == "8GB" and kw["queue"] == "short" and kw["account"] == "km3net"
    assert kw["walltime"] == "02:00:00"
    assert kw["job_script_prologue"] == ["export NUMBA_NUM_THREADS=2", "export OMP_NUM_THREADS=2",
                                         "module load apptainer"]
    name, kw = jobqueue_arguments(_cluster("htcondor", memory="2GB", walltime="01:30",
                                           job_extra_directives=["requirements = (OpSysMajorVer == 9)"]))
    assert name == "HTCondorCluster" and kw["disk"] == "2GB" and "queue" not in kw
    assert kw["job_extra_directives"] == {"requirements": "(OpSysMajorVer == 9)", "+MaxRuntime": "5400"}
    name, kw = jobqueue_arguments(_cluster("pbs", queue="long"))
    assert name == "PBSCluster" and kw["queue"] == "long" and kw["memory"] == "4GB"
    with pytest.raises(ConfigError, match="'key = value'"):
        jobqueue_arguments(_cluster("htcondor", job_extra_directives=["nonsense"]))


def test_cluster_section_errors(tmp_path):
    p = write_small_production(tmp_path)
    p.write_text(p.read_text().replace("cluster: {workers: 0}", "cluster: {workers: 2, jobqueue: {cores: 4}}"))
    with pytest.raises(ConfigError, match="needs type slurm, htcondor or pbs"):
        load_production(p)
    p.write_text(p.read_text().replace("cluster: {workers: 2, jobqueue: {cores: 4}}",
                                       "cluster: {type: slurm, jobqueue: {cores: 4, memroy: 1GB}}"))
    with pytest.raises(ConfigError, match=r"cluster\.jobqueue\.memroy: unknown key"):
        load_production(p)


def test_missing_dask_jobqueue_gives_the_install_command(monkeypatch):
    from km3sim.pipeline.cluster import make_jobqueue_cluster

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'km3sim\[batch\]'"):
        make_jobqueue_cluster(_cluster("slurm"))


def test_slurm_job_script_from_the_yaml_section():
    pytest.importorskip("dask_jobqueue")
    from km3sim.pipeline.cluster import make_jobqueue_cluster

    cluster = make_jobqueue_cluster(_cluster("slurm", cores=1, memory="3GB", queue="km3", account="acc",
                                             walltime="00:30:00", python="/opt/km3sim/bin/python"))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p km3", "#SBATCH -A acc", "#SBATCH -t 00:30:00", "export NUMBA_NUM_THREADS=1",
                 "/opt/km3sim/bin/python -m distributed.cli.dask_worker"):
        assert line in script, (line, script)
    assert "#SBATCH --mem=" in script


# ------------------------------------------------------------------------------------ failures
def test_failure_classes():
    from distributed.scheduler import KilledWorker

    from km3sim.pipeline.runner import RETRYABLE, WorkerLost, classify_failure

    assert classify_failure(MemoryError()) == "memory"
    assert classify_failure(WorkerLost("result lost with its worker")) == "worker_lost"
    assert classify_failure(KilledWorker("key", "tcp://127.0.0.1:1", 3)) == "worker_lost"
    assert classify_failure(StageFileError("stage file x.h5 is not a readable HDF5 file")) == "bad_input"
    assert classify_failure(StageError("stage 'trigger' needs a detector")) == "bad_input"
    assert classify_failure(ZeroDivisionError()) == "bug"
    assert RETRYABLE == {"worker_lost", "memory"}


def test_out_of_memory_retries_ask_for_more_memory_where_workers_have_it():
    from km3sim.pipeline.runner import memory_retry_resources

    assert memory_retry_resources([4e9, 16e9, None], 1, 2.0) == {"MEMORY": 8e9}
    assert memory_retry_resources([4e9, 16e9], 3, 2.0) == {"MEMORY": 16e9}  # capped at the largest worker
    assert memory_retry_resources([4e9, 4e9], 1, 2.0) is None  # nowhere bigger: plain retry
    assert memory_retry_resources([None, None], 1, 2.0) is None


def test_sanity_flags():
    from km3sim.detector.geometry import build_orca_block
    from km3sim.pipeline.runner import sanity_flags
    from km3sim.schema import empty_table

    class T:
        n_events = 4

    det = build_orca_block(n_dus=3)
    ev = Table({"event_id": np.arange(3)}, name="events")
    pos = det.dom_pos
    cx, cy = pos[:, 0].mean(), pos[:, 1].mean()
    r = np.hypot(pos[:, 0] - cx, pos[:, 1] - cy).max()
    big = {"can": {"x": cx, "y": cy, "zmin": 0.0, "zmax": pos[:, 2].max() + 10, "r": r + 10}}
    small = {"can": {**big["can"], "r": r - 1}}
    f = sanity_flags(T(), "generate", {"events": ev, "mc_tracks": empty_table("mc_tracks")}, big, det)
    assert f == ["events_generated: 3 rows, 4 expected", "empty_output: mc_tracks"]
    assert any(x.startswith("can_too_small") for x in sanity_flags(T(), "generate", {"events": ev}, small, det))
    hits = Table({"event_id": np.zeros(40, dtype=np.int64)}, name="hits")
    assert sanity_flags(T(), "detect", {"hits": hits}, {}, det, max_hits_per_event=9) == [
        "hits_per_event: hits 10 outside [0, 9]"]
    assert sanity_flags(T(), "detect", {"hits": hits}, {}, det) == []
    T.n_events = 0
    assert sanity_flags(T(), "detect", {"hits": hits[:0]}, {}, det) == ["empty_chunk"]


def test_progress_display_per_stage_rate_and_eta():
    import io

    from km3sim.pipeline.progress import ProgressDisplay, format_duration

    buf = io.StringIO()
    d = ProgressDisplay(stream=buf, tty=False, interval_s=1e9)
    d.start({"pending_by_stage": {"gen": 2, "light": 2}, "n_tasks": 6, "n_done": 2, "where": "scheduler tcp://x:1",
             "dashboard": "http://x:8787/status"})
    d.t0 -= 10.0  # ten seconds ago
    d(1, 4, {"key": "gen-run1-chunk0", "stage": "gen", "status": "done"})
    d(2, 4, {"key": "light-run1-chunk0", "stage": "light", "status": "failed", "error": "boom",
             "error_class": "bad_input"})
    lines = d.lines()
    assert "gen" in lines[0] and "1/2" in lines[0] and "50.0%" in lines[0]
    assert "failed 1" in lines[1] and lines[2].lstrip().startswith("overall")
    # 2 of 4 tasks in ~10 s: 0.2 tasks/s, ~10 s to go
    assert "0.20/s" in lines[2] and "ETA 10s" in lines[2]
    out = buf.getvalue()
    assert "6 tasks, 2 already done, 4 to run on scheduler tcp://x:1" in out and "http://x:8787/status" in out
    assert "FAILED light-run1-chunk0: [bad_input] boom" in out
    assert format_duration(3725) == "1h02m" and format_duration(65) == "1m05s" and format_duration(None) == "-"
