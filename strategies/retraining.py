"""Keeping the model current inside the strategy, free of any engine (both bindings use it).

:class:`ModelLifecycle` holds every bar the strategy has seen (its warm-up history and the bars
since), retrains on the schedule of :mod:`scoremodel.schedule` (``retrain:`` of the run
configuration, the strategy config's ``retrain`` field), and hands the binding the model to
decide with from each bar on. The binding calls, per bar:

- :meth:`ModelLifecycle.observe` with every bar it accepts (history too);
- :meth:`ModelLifecycle.model_for` before the model reads a traded bar: the promoted model to
  swap in now (from the bar its schedule's delay allows), or None;
- :meth:`ModelLifecycle.after_decision` once the bar is decided: the version's bar count and
  the drift monitors;
- :meth:`ModelLifecycle.end_of_bar` after every traded bar (decided, or warming up after a
  gap): a retraining when one is due (training data: the bars up to and including this one).

A retraining is one :func:`scoremodel.retrain.run_retrain`: fit a candidate with the recipe of
the model in use, compare it with that model on the most recent bars it did not train on,
store it as a version (:mod:`scoremodel.registry`), promote it or keep the current one. In a
backtest it runs in the engine's thread (:class:`InlineTrainer`), so the run is deterministic
and the new model decides from exactly ``delay_bars`` later; live it runs in a separate process
at a lower priority (:class:`ProcessTrainer`), polled on a timer, so ``on_bar`` never waits for
it; a crash, a timeout or an out-of-memory kill of that process leaves the current model
trading and logs one line. Every decision is traceable: :attr:`ModelLifecycle.version_index`
names the version deciding each bar, :meth:`ModelLifecycle.versions` lists them all with the
bars they decided.
"""

from __future__ import annotations

import bisect
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
from pathlib import Path
from typing import Any
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from field_rules import OPEN_FRACTION
from field_rules import PATH
from field_rules import POSITIVE
from field_rules import Choice
from field_rules import Either
from field_rules import Flag
from field_rules import Integer
from field_rules import Nullable
from field_rules import Number
from field_rules import Parsed
from field_rules import Rejected
from field_rules import rules_of
from field_rules import setting
from scoremodel.drift import DriftMonitor
from scoremodel.drift import DriftThresholds
from scoremodel.inference import ScoreModel
from scoremodel.registry import Registry
from scoremodel.registry import resolve_model_dir
from scoremodel.registry import version_id
from scoremodel.retrain import RetrainJob
from scoremodel.retrain import RetrainOutcome
from scoremodel.retrain import fit_config_of
from scoremodel.retrain import run_retrain
from scoremodel.schedule import EXPANDING
from scoremodel.schedule import RetrainSchedule
from scoremodel.schedule import check_span

SPAN = Either((Integer(1), Parsed(check_span, "a duration such as 7D, 12h or 90min")))


@dataclass(frozen=True)
class RetrainSettings:
    """The ``retrain:`` section of the run configuration (README, "Keeping the model current").

    ``every`` null: never retrain (the default). Spans are durations or whole numbers of bars.
    """

    every: int | str | None = setting(None, Nullable(SPAN))  # period of the calendar grid
    window: int | str = setting(EXPANDING, Either((Choice((EXPANDING,)), SPAN)))
    min_bars: int = setting(2_000, Integer(200))  # fewer bars in the window: wait
    epochs: int | None = setting(None, Nullable(Integer(1)))  # None: the model's own budget
    delay_bars: int = setting(1, Integer(1))  # bars from the data's end to the first decision
    keep: int = setting(10, Integer(1))  # versions kept on disk (never the current one)
    validate: bool = setting(True, Flag())  # promote only a candidate not worse (README)
    on_drift: bool = setting(False, Flag())  # a drift breach retrains at once
    threads: int = setting(1, Integer(1))  # torch threads of a training (bit-identity)
    timeout_secs: float = setting(3_600.0, POSITIVE)  # live: a longer training is killed
    registry: str | None = setting(None, Nullable(PATH))  # versions' home (None: the model)
    drift_window: int = setting(500, Integer(30))  # bars the drift statistics cover
    drift_check_every: int = setting(250, Integer(1))  # bars between drift checks
    drift_ks_alpha: float = setting(0.01, OPEN_FRACTION)  # PIT KS critical value's level
    drift_max_flagged: float = setting(0.3, Number(0, 1))  # density filter's share
    drift_vol_ratio: float = setting(2.0, Number(1, None, low_open=True))  # realised/predicted

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> RetrainSettings:
        """Settings from a plain mapping (the strategy config's ``retrain``), each value checked
        by its field's rule (ValueError naming the field)."""
        values = dict(values or {})
        rules = rules_of(cls)
        unknown = sorted(set(values) - set(rules))
        if unknown:
            raise ValueError(f"retrain has unknown fields {unknown}; valid: {sorted(rules)}")
        checked = {}
        for name, value in values.items():
            try:
                checked[name] = rules[name].parse(value)
            except Rejected:
                raise ValueError(
                    f"retrain.{name} = {value!r} is invalid; expected {rules[name].allowed}"
                ) from None
        return cls(**checked)

    @property
    def enabled(self) -> bool:
        return self.every is not None

    def drift(self) -> DriftThresholds:
        return DriftThresholds(
            window=self.drift_window,
            check_every=self.drift_check_every,
            ks_alpha=self.drift_ks_alpha,
            max_flagged=self.drift_max_flagged,
            vol_ratio=self.drift_vol_ratio,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def given(self, values: dict[str, Any]) -> dict[str, Any]:
        """The checked values of the fields named in ``values``."""
        return {name: getattr(self, name) for name in values}


class RetrainRule:
    """The strategy config's ``retrain`` field: null, or a mapping :class:`RetrainSettings`
    accepts (kept as the mapping of its checked values)."""

    allowed = "null or a mapping of retrain settings (README, 'Keeping the model current')"

    def parse(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Rejected
        return RetrainSettings.from_mapping(value).given(value)


RETRAIN_FIELDS = tuple(f.name for f in fields(RetrainSettings))


# ----- the bars seen ---------------------------------------------------------------------------


class BarHistory:
    """Every bar a strategy accepted, oldest first (growable typed arrays: cheap per bar)."""

    COLUMNS = ("open", "high", "low", "close", "volume")

    def __init__(self) -> None:
        self._ts = array("q")
        self._values = array("d")  # the COLUMNS of each bar, one after the other

    def __len__(self) -> int:
        return len(self._ts)

    def append(self, ts_ns: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        self._ts.append(ts_ns)
        self._values.extend((o, h, lo, c, v))

    def count_since(self, first_ns: int) -> int:
        """Bars closing at or after ``first_ns``."""
        return len(self._ts) - bisect.bisect_left(self._ts, first_ns)

    def frame(self, first_ns: int = 0) -> pd.DataFrame:
        """The bars closing at or after ``first_ns`` as a bar frame (index: close time, UTC)."""
        start = bisect.bisect_left(self._ts, first_ns)
        width = len(self.COLUMNS)
        values = np.frombuffer(self._values, dtype=np.float64).reshape(-1, width)[start:]
        index = pd.to_datetime(np.frombuffer(self._ts, dtype=np.int64)[start:], unit="ns", utc=True)
        return pd.DataFrame(values.copy(), index=index, columns=self.COLUMNS)

    def drop_before(self, first_ns: int) -> None:
        """Forget the bars closing before ``first_ns`` (a rolling window needs no more)."""
        start = bisect.bisect_left(self._ts, first_ns)
        if start:
            del self._ts[:start]
            del self._values[: start * len(self.COLUMNS)]


# ----- where a retraining runs ------------------------------------------------------------------


class Trainer(Protocol):
    """Runs one retraining at a time; :meth:`poll` gives its outcome once, or a failure line."""

    busy: bool

    def start(self, job: RetrainJob, current: ScoreModel | None) -> None: ...

    def poll(self) -> RetrainOutcome | str | None: ...

    def close(self) -> None: ...


class InlineTrainer:
    """Trains in the calling thread (backtests): deterministic, and the engine waits."""

    def __init__(self) -> None:
        self.busy = False
        self._result: RetrainOutcome | str | None = None

    def start(self, job: RetrainJob, current: ScoreModel | None) -> None:
        threads = torch.get_num_threads()
        try:
            self._result = run_retrain(job, current)
        except Exception as error:  # a failed retraining must not stop a backtest
            self._result = f"{type(error).__name__}: {' '.join(str(error).split())}"
        finally:
            torch.set_num_threads(threads)

    def poll(self) -> RetrainOutcome | str | None:
        result, self._result = self._result, None
        return result

    def close(self) -> None:
        pass


class ProcessTrainer:
    """Trains in a child process (``python -m strategies.retraining JOB RESULT``) at a lower
    priority; killed after ``timeout_s``. Its outcome comes back through a file."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.busy = False
        self._process: subprocess.Popen | None = None
        self._work: Path | None = None
        self._started = 0.0

    def start(self, job: RetrainJob, current: ScoreModel | None) -> None:
        self._work = Path(tempfile.mkdtemp(prefix="retrain-"))
        (self._work / "job.pickle").write_bytes(pickle.dumps(job))
        with (self._work / "stderr.txt").open("wb") as stderr:  # the child keeps its copy
            self._process = subprocess.Popen(
                [sys.executable, "-m", "strategies.retraining", str(self._work)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, "PYTHONPATH": _import_path()},
            )
        self._started = time.monotonic()
        self.busy = True

    def poll(self) -> RetrainOutcome | str | None:
        if self._process is None:
            return None
        status = self._process.poll()
        if status is None:
            if time.monotonic() - self._started <= self.timeout_s:
                return None
            self._process.kill()
            self._process.wait()
            return self._finish(
                f"the training process ran past retrain.timeout_secs "
                f"({self.timeout_s:g} s) and was stopped"
            )
        result = self._work / "outcome.pickle"
        if status == 0 and result.is_file():
            return self._finish(pickle.loads(result.read_bytes()))
        return self._finish(self._failure(status))

    def _failure(self, status: int) -> str:
        error = self._work / "error.txt"
        if error.is_file():
            return error.read_text().strip()
        if status < 0:
            return f"the training process was killed by signal {-status} (out of memory?)"
        tail = (self._work / "stderr.txt").read_text(errors="replace").strip().splitlines()
        return f"the training process exited with status {status}: {(tail or [''])[-1]}"

    def _finish(self, result: RetrainOutcome | str) -> RetrainOutcome | str:
        shutil.rmtree(self._work, ignore_errors=True)
        self._process, self._work, self.busy = None, None, False
        return result

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
        self._process, self._work, self.busy = None, None, False


def _import_path() -> str:
    """PYTHONPATH for the training process: this project first (it imports
    ``strategies.retraining`` whatever the working directory), then the caller's."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))


def _child_main(work: Path) -> int:
    """The training process: run the pickled job (written by :class:`ProcessTrainer` into its
    private directory), leave the outcome or a one-line error."""
    os.nice(10)  # the trading process keeps the CPU when both want it
    job = pickle.loads((work / "job.pickle").read_bytes())
    try:
        outcome = run_retrain(job)
    except Exception as error:
        (work / "error.txt").write_text(f"{type(error).__name__}: {' '.join(str(error).split())}")
        return 1
    temporary = work / "outcome.tmp"
    temporary.write_bytes(pickle.dumps(outcome))
    temporary.replace(work / "outcome.pickle")
    return 0


# ----- the lifecycle ----------------------------------------------------------------------------


@dataclass
class VersionUse:
    """One model version of a run: where it came from and the bars it decided."""

    id: str
    trained_from: str
    trained_to: str
    promoted: bool
    reason: str
    due_bar: str | None = None
    first_bar: str | None = None
    last_bar: str | None = None
    bars_decided: int = 0
    metrics: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class ModelLifecycle:
    """The retraining schedule, the versions and the drift monitors of one strategy."""

    def __init__(
        self,
        settings: RetrainSettings,
        model: ScoreModel,
        model_dir: str | Path,
        *,
        bar_ns: int,
        bar_type: str,
        signal_mode: str,
        density_percentile: float,
        density_rule: str,
        trainer: Trainer,
        resume: bool,
        log: Callable[[str], None] = print,
        warn: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.schedule = (
            RetrainSchedule.of(
                bar_ns, settings.every, settings.window, settings.min_bars, settings.delay_bars
            )
            if settings.enabled
            else None
        )
        self.registry = Registry(Path(settings.registry or model_dir))
        self.model_dir = resolve_model_dir(model_dir)  # the checkpoint in use
        reason = "the model the run started with"
        resumed = self.registry.current_id() if resume else None  # live restarts only
        if resumed is not None and resumed != version_id(model.manifest):
            manifest, weights = self.registry.load(resumed)  # a restart resumes with it
            model = ScoreModel(manifest, weights, density_percentile, density_rule)
            self.model_dir = self.registry.versions_dir / resumed
            reason = f"the current version of {self.registry.root} (resumed)"
        self.model = model
        self.fit = fit_config_of(model.manifest, signal_mode, settings.epochs, settings.threads)
        self.bar_type = bar_type
        self.density_percentile = density_percentile
        self.density_rule = density_rule
        self.trainer = trainer
        self.log, self.warn = log, warn
        self.history = BarHistory()
        self.drift = DriftMonitor(settings.drift(), self._traded_horizon(model))
        self.drift_alerts: list[dict] = []
        data = model.manifest["data"]
        self.uses = [
            VersionUse(
                version_id(model.manifest),
                data["first_bar"],
                data["last_bar"],
                True,
                reason,
            )
        ]
        self.ids = [self.uses[0].id]  # version ids by index (the decision record's column)
        self.version_index = 0  # of :attr:`uses`, deciding the current bar
        self.order_tag = f"model:{self.ids[0]}"  # on every order: the version that sent it
        self._last_ns = 0  # the last decided bar (the schedule's previous bar)
        self._last_decided_ns = 0
        self._pending: tuple[int, ScoreModel, int] | None = None  # (activation, model, use)
        self._job: RetrainJob | None = None
        self._retrain_now = False

    @staticmethod
    def _traded_horizon(model: ScoreModel) -> int:
        conditional = model.conditional
        return conditional.horizons[-1] if conditional is not None else 1

    @property
    def version(self) -> str:
        """The id of the version deciding now."""
        return self.uses[self.version_index].id

    def history_start_ns(self, first_bar_ns: int) -> int:
        """Close time of the first bar to request before ``first_bar_ns`` (the first traded
        bar): a rolling window's worth, or from the model's own first training bar."""
        if self.schedule is None:
            return first_bar_ns
        if self.schedule.window_ns is not None:
            return first_bar_ns - self.schedule.window_ns
        return int(pd.Timestamp(self.model.manifest["data"]["first_bar"]).value)

    # ----- per bar ----------------------------------------------------------------------------

    def observe(self, ts_ns: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        """Keep an accepted bar (history and traded) for the next training window."""
        self.history.append(ts_ns, o, h, lo, c, v)

    def model_for(self, ts_ns: int) -> ScoreModel | None:
        """The model to decide with from this bar on, when a promoted one is due now (a
        finished retraining is collected off the bar path: right after it in a backtest, on
        the live node's timer)."""
        if self._pending is None or ts_ns < self._pending[0]:
            return None
        activation, model, use = self._pending
        self._pending = None
        self._close_use()
        self.version_index = use
        self.order_tag = f"model:{self.version}"
        self.model = model
        self.model_dir = self.registry.versions_dir / self.version
        self.registry.set_current(self.version)
        late = (ts_ns - activation) // self.schedule.bar_ns
        self.log(
            f"model version {self.version} decides from {pd.Timestamp(ts_ns, tz='UTC')}"
            + (f" ({late} bars late: training took longer than delay_bars)" if late else "")
        )
        return model

    def after_decision(
        self, ts_ns: int, close: float, mean: float, std: float, familiar: bool
    ) -> None:
        """Count a decided bar for the version that decided it and feed the drift monitors."""
        use = self.uses[self.version_index]
        use.first_bar = use.first_bar or str(pd.Timestamp(ts_ns, tz="UTC"))
        use.bars_decided += 1
        self._last_decided_ns = ts_ns
        breaches = self.drift.update(math.log(close), mean, std, familiar)
        if breaches:
            self._drift_breach(ts_ns, breaches)

    def end_of_bar(self, ts_ns: int) -> None:
        """After every traded bar, decided or still warming up (after a gap): start a
        retraining if one is due at this bar, on the bars up to and including it."""
        schedule = self.schedule
        if schedule is None:
            return
        due = schedule.due(self._last_ns, ts_ns) or self._retrain_now
        self._last_ns = ts_ns
        if due and self._start(ts_ns):
            self._retrain_now = False  # a drift request waits until a retraining can start

    def reset_drift(self) -> None:
        """After a gap: the forecasts in flight no longer line up with their horizon."""
        self.drift.reset()

    def _drift_breach(self, ts_ns: int, breaches: list[str]) -> None:
        stamp = pd.Timestamp(ts_ns, tz="UTC")
        self.drift_alerts.append(
            {"bar": str(stamp), "breaches": breaches, "statistics": dict(self.drift.last)}
        )
        action = "retraining now (retrain.on_drift)" if self.settings.on_drift else "no action"
        self.warn(
            f"drift at {stamp} in model version {self.version}: {'; '.join(breaches)}; {action}"
        )
        if self.settings.on_drift and self.schedule is not None:
            self._retrain_now = True

    # ----- retraining -------------------------------------------------------------------------

    def _start(self, ts_ns: int) -> bool:
        """Start a retraining on the bars up to ``ts_ns``; False when it cannot yet."""
        schedule = self.schedule
        if self.trainer.busy or self._pending is not None:
            self.warn(
                f"retraining due at {pd.Timestamp(ts_ns, tz='UTC')} skipped: the previous "
                "one has not finished or not started deciding yet"
            )
            return False
        first_ns = schedule.first_bar_ns(ts_ns)
        if schedule.window_ns is not None:
            self.history.drop_before(first_ns - schedule.window_ns)  # keep two windows at most
        available = self.history.count_since(first_ns)
        if available < schedule.min_bars:
            self.log(
                f"retraining due at {pd.Timestamp(ts_ns, tz='UTC')} waits: {available} bars "
                f"in the window, retrain.min_bars is {schedule.min_bars}"
            )
            return False
        job = RetrainJob(
            bars=self.history.frame(first_ns),
            bar_type=self.bar_type,
            fit=self.fit,
            registry_root=str(self.registry.root.absolute()),
            current_dir=str(self.model_dir.absolute()),
            validate=self.settings.validate,
            due_ns=ts_ns,
            activation_ns=schedule.activation_ns(ts_ns),
            density_percentile=self.density_percentile,
            density_rule=self.density_rule,
        )
        self.log(f"retraining on {len(job.bars):,} bars up to {pd.Timestamp(ts_ns, tz='UTC')}")
        self._job = job
        self.trainer.start(job, self.model)
        self.poll()
        return True

    def poll(self) -> None:
        """Collect a finished retraining (live: also called on a timer, off the bar path):
        load a promoted version, to be swapped in at its activation bar."""
        if self._job is None:
            return
        result = self.trainer.poll()
        if result is None:
            return
        job, self._job = self._job, None
        due = str(pd.Timestamp(job.due_ns, tz="UTC"))
        if isinstance(result, str):
            self.warn(f"retraining due at {due} failed, the current model keeps trading: {result}")
            return
        record = result.record
        use = VersionUse(
            result.identity,
            record["trained_from"],
            record["trained_to"],
            result.promoted,
            result.reason,
            due_bar=due,
            metrics=record.get("metrics"),
        )
        self.uses.append(use)
        self.ids.append(use.id)
        if not result.promoted:
            self.warn(f"model version {result.identity} not promoted: {result.reason}")
            self._prune()
            return
        manifest, weights = self.registry.load(result.identity)
        model = ScoreModel(manifest, weights, self.density_percentile, self.density_rule)
        self._pending = (job.activation_ns, model, len(self.uses) - 1)
        self.log(
            f"model version {result.identity} promoted ({result.reason}); it decides from "
            f"{pd.Timestamp(job.activation_ns, tz='UTC')}"
        )
        self._prune()

    def _prune(self) -> None:
        removed = self.registry.prune(self.settings.keep)
        if removed:
            self.log(f"removed old model versions {', '.join(removed)} (retrain.keep)")

    def _close_use(self) -> None:
        use = self.uses[self.version_index]
        if use.first_bar is not None:
            use.last_bar = str(pd.Timestamp(self._last_decided_ns, tz="UTC"))

    # ----- reporting --------------------------------------------------------------------------

    def versions(self) -> list[dict]:
        """summary.json ``model_versions``: every version of the run, the bars it decided."""
        current = self.uses[self.version_index]
        if current.first_bar is not None and current.last_bar is None:
            current.last_bar = str(pd.Timestamp(self._last_decided_ns, tz="UTC"))
        return [use.to_dict() for use in self.uses]

    def close(self) -> None:
        self.trainer.close()


if __name__ == "__main__":  # the training process of ProcessTrainer
    sys.exit(_child_main(Path(sys.argv[1])))
