"""Every command the README and docs/*.md show in a ```bash block (and every `$ ` command of a transcript)
works as shown, so an example cannot rot.

The commands are read from the docs when the tests are collected, never copied here. A documented path
that only stands for the user's file (`<run>`, `...`, `/path/to/...`, `words.csv`) is replaced by a real
stand-in made once per module (`STAND_INS`: a tiny smoke training run, a CSV, the app's real v1 file);
a command with a placeholder the table does not know fails, saying to add it.

How a command is exercised, cheapest real check first:
- `python -m layoutnet ...` (training): its config is composed in process with the command's overrides
  (a sweep, `-m`: each job of the basic sweeper, with `hydra.sweeper.params` of a preset; an Optuna preset:
  its base config) and everything a run checks before training runs on it (`fit.Run.prepare`: model,
  data source, trainer, export settings, required values, objective), for the first job; every other
  job's export settings, trainer settings, required values and objective are checked too. The word tables
  of the full synthetic data (a minute to build) are left out: only their layouts are checked.
- evaluate, predict, export, validate, generate, summarize: run for real against the stand-ins, with the
  small data of `SPEED_OVERRIDES` where the command would otherwise take minutes; exit code 0, and for
  predict the documented shape of its output lines.
- a command shown with an `error:` line: run, and refused with that line.
- `make <target>`: the Makefile has the target (make itself reinstalls into the interpreter: not run);
  `python <script> --flags`: the script exists and its --help lists the flags; `pip install -e ".[x]"`:
  pyproject.toml has the extra. Set-up that is not layoutnet's (`SET_UP`: apt-get, a virtual
  environment) is skipped with its reason.
A documented command that does not work today is listed in `KNOWN_BROKEN` with its issue: it runs
anyway as a strict xfail, so its fix turns the test red until the entry is removed.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, SHARED, run_module

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

TRAIN = "layoutnet"
RUN_FOR_REAL = (
    "layoutnet.evaluate",
    "layoutnet.predict",
    "layoutnet.export",
    "layoutnet.export.validate",
    "layoutnet.generate",
    "layoutnet.summarize",
)
SET_UP = {
    "apt-get": "the system's package manager, not layoutnet's to test",
    ".": "activates a virtual environment: the shell's set-up, not layoutnet's",
    "source": "activates a virtual environment: the shell's set-up, not layoutnet's",
    "-m venv": "creates a virtual environment: Python's own set-up, not layoutnet's",
}
"""Set-up commands shown in the docs that are not layoutnet's (a program, or `-m module`), and why."""

# ---------------------------------------------------------------------------------------------------------
# Reading the docs


@dataclass
class DocCommand:
    """One command as a doc shows it: where, its words (shell-split, comments dropped), what it reads on
    stdin, the output lines shown right under it and the `error:` line when it is shown refused."""

    source: str
    line: int
    words: list[str]
    stdin_text: str | None = None
    stdin_file: str | None = None
    shown: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The command as the doc shows it (quotes only where a word has a space)."""
        shell = " ".join(shlex.quote(w) if " " in w else w for w in self.words)
        if self.stdin_text is not None:
            shell = f"printf '{self.stdin_text}' | {shell}"
        if self.stdin_file is not None:
            shell += f" < {self.stdin_file}"
        return shell

    @property
    def id(self) -> str:
        return f"{self.source}: {self.text}"

    @property
    def refusal(self) -> str | None:
        return next((line for line in self.shown if line.startswith("error:")), None)


def _printf(fmt: str) -> str:
    return fmt.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")


def _commands_of_line(source: str, number: int, line: str) -> list[DocCommand]:
    """The commands of one shell line: `a && b` is two, `printf '...' | cmd` and `cmd < file` feed stdin."""
    words = shlex.split(line, comments=True)
    commands, part = [], []
    for word in [*words, "&&"]:
        if word != "&&":
            part.append(word)
            continue
        if not part:
            continue
        command = DocCommand(source, number, part)
        if "|" in part:
            cut = part.index("|")
            producer, command.words = part[:cut], part[cut + 1 :]
            assert producer[0] == "printf" and len(producer) == 2, (
                f"{source}:{number}: cannot feed {producer}"
            )
            command.stdin_text = producer[1]
        if "<" in command.words:
            cut = command.words.index("<")
            command.stdin_file, command.words = command.words[cut + 1], command.words[:cut]
        commands.append(command)
        part = []
    return commands


def read_commands(path: Path) -> list[DocCommand]:
    """The commands of a doc's ```bash blocks (`\\` continuations joined, comments dropped; the comment lines
    right under a command are its shown output) and the `$ ` commands of its other blocks (the lines under
    one, up to a blank line, are its output)."""
    source = path.relative_to(REPO_ROOT).as_posix()
    commands: list[DocCommand] = []
    fence: str | None = None
    pending, start = "", 0
    last: list[DocCommand] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else (stripped[3:].strip() or "text")
            last = []
            continue
        if fence is None:
            continue
        if fence == "bash":
            if pending or (stripped and not stripped.startswith("#")):
                pending, start = (f"{pending} {stripped}", start) if pending else (stripped, number)
                if pending.endswith("\\"):
                    pending = pending[:-1].rstrip()
                    continue
                last = _commands_of_line(source, start, pending)
                commands.extend(last)
                pending = ""
            elif not stripped:
                last = []
            elif last:
                last[-1].shown.append(stripped.lstrip("#").strip())
        elif fence in ("text", "console", "shell"):
            if stripped.startswith("$ "):
                last = _commands_of_line(source, number, stripped[2:])
                commands.extend(last)
            elif not stripped:
                last = []
            elif last:
                last[-1].shown.append(stripped)
    return commands


@functools.cache
def documented_commands() -> tuple[DocCommand, ...]:
    return tuple(command for path in DOCS for command in read_commands(path))


# ---------------------------------------------------------------------------------------------------------
# Commands documented that do not work today: (doc file, command as the doc shows it) -> the reason, with
# the issue that fixes it. Each still runs, as a strict xfail: when it starts to work, remove its entry.

KNOWN_BROKEN: dict[tuple[str, str], str] = {}


def _params() -> list:
    params = []
    seen: dict[str, int] = {}
    for command in documented_commands():
        ident = command.id
        seen[ident] = seen.get(ident, 0) + 1
        if seen[ident] > 1:
            ident = f"{ident} #{seen[ident]}"
        reason = KNOWN_BROKEN.get((command.source, command.text))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(command, id=ident, marks=marks))
    return params


# ---------------------------------------------------------------------------------------------------------
# Stand-ins for the paths a doc leaves to the user


@dataclass(frozen=True)
class StandIn:
    pattern: str
    """A regular expression over one value (the part after `key=`, or a whole word)."""
    made: str
    """The name `StandIns.get` makes the stand-in by."""
    means: str


STAND_INS = (
    StandIn(
        r"^(?:<run>|outputs/\w+/runs/(?:<time>|\.\.\.|\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d))(?=/)",
        "run",
        "a training run's directory: the smoke run's",
    ),
    StandIn(r"^outputs/export/latest(?=/)", "export_run", "the newest export: the smoke run's, re-exported"),
    StandIn(r"^outputs/\w+/latest(?=/)", "run", "a task's newest run: the smoke run"),
    StandIn(
        r"^outputs/\w+/(?:multiruns/(?:<time>|\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)|latest_multirun)$",
        "sweep",
        "a sweep directory: the smoke run's one-job sweep",
    ),
    StandIn(r"^\.\.\.(?=/best\.ckpt$)", "checkpoints", "a run's checkpoints/ folder"),
    StandIn(r"^(?:\.\.\.|/path/export)(?=/LayoutClassifier\.mlmodel$)", "export", "a run's export/ folder"),
    StandIn(r"^\.\.\.$", "checkpoint", "a model file: the smoke run's best.ckpt"),
    StandIn(
        r"^(?:/path/to/)?model_production\.pth$",
        "production_pth",
        "the app's production ensemble state_dict: random weights, the documented names and shapes",
    ),
    StandIn(r"^/path/to/model\.pth$", "v1_pth", "a legacy OMFK file: the app's real v1 model (../shared)"),
    StandIn(r"^/path/to/app/LayoutModel$", "new_folder", "a folder that does not exist yet"),
    StandIn(r"^(?:training_data|words)\.csv$", "csv", "a text,label CSV with every class"),
    StandIn(
        r"^(?:typed|my_typing)\.csv$", "pairs_csv", "a typed,expected CSV of lines typed on every layout"
    ),
    StandIn(r"^words\.txt$", "words_txt", "lines of text to predict"),
    StandIn(r"^DIR$", "folder", "an existing folder"),
)
PLACEHOLDER = re.compile(r"<\w+>|\.\.\.|/path/|\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d|^[A-Z][A-Z_]+$")
"""What a value that stands for the user's own looks like, once the stand-ins are in."""
INPUT_KEYS = (
    "model_path",
    "ckpt_path",
    "artifact",
    "teacher_ckpt",
    "init_from",
    "data.path",
    "data_path",
    "pairs_path",
    "layouts_dump",
    "data.layouts_dump",
)
"""Keys whose value is a file the command reads: after substitution it must exist."""

WORDS = {
    "en": ["hello", "world", "keyboard", "people", "water", "house", "green", "music", "table", "paper"],
    "ru": ["привет", "мир", "клавиатура", "люди", "вода", "дом", "зелёный", "музыка", "стол", "бумага"],
    "he": ["שלום", "עולם", "מקלדת", "אנשים", "מים", "בית", "ירוק", "מוזיקה", "שולחן", "ספר"],
}
LAYOUT_OF = {"en": "us", "ru": "russianwin", "he": "hebrew"}


class Made:
    """The stand-ins that take time, made once per module on first use."""

    def __init__(self, folder: Path):
        self.folder = folder

    @functools.cached_property
    def sweep(self) -> Path:
        """A real smoke training run, as a one-job sweep: its job is a run directory, its folder a sweep's."""
        sweep = self.folder / "multiruns" / "smoke"
        args = ["-m", "+experiment=smoke", f"hydra.sweep.dir={sweep}"]
        run_module(TRAIN, args, cwd=self.folder, timeout=600, check=True)
        return sweep

    @functools.cached_property
    def export_run(self) -> Path:
        """The smoke run's checkpoint exported as an ML Program by `python -m layoutnet.export`."""
        run = self.folder / "export"
        ckpt = self.sweep / "0" / "checkpoints" / "best.ckpt"
        args = [f"ckpt_path={ckpt}", "export=mlprogram", *SPEED_OVERRIDES["layoutnet.export"]]
        run_module(
            "layoutnet.export", [*args, f"hydra.run.dir={run}"], cwd=self.folder, timeout=600, check=True
        )
        return run

    @functools.cached_property
    def csv(self) -> Path:
        from layoutnet.data import csvfile
        from layoutnet.layouts import LayoutSet

        layouts = LayoutSet.builtin()
        texts, labels = [], []
        for meant, words in WORDS.items():
            for active in WORDS:
                for word in words:
                    texts.append(layouts.convert(word, LAYOUT_OF[meant], LAYOUT_OF[active]))
                    labels.append(meant if active == meant else f"{meant}_from_{active}")
        path = self.folder / "texts.csv"
        csvfile.write(path, texts, labels)
        return path

    @functools.cached_property
    def pairs_csv(self) -> Path:
        """Two-word lines typed as meant and on the other layouts, with what they meant."""
        from layoutnet.layouts import LayoutSet

        layouts = LayoutSet.builtin()
        path = self.folder / "typed.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            rows = csv.writer(handle)
            rows.writerow(["typed", "expected"])
            for meant, words in WORDS.items():
                for active in WORDS:
                    line = words[:2] if active == meant else words[2:4]
                    typed = [layouts.convert(word, LAYOUT_OF[meant], LAYOUT_OF[active]) for word in line]
                    rows.writerow([" ".join(typed), " ".join(line)])
        return path

    @functools.cached_property
    def production_pth(self) -> Path:
        import torch

        from .legacy_reference import random_legacy_state_dict

        path = self.folder / "model_production.pth"
        torch.save(random_legacy_state_dict("ensemble", seed=0), path)
        return path


class StandIns:
    """The stand-in of each `StandIn.made` name, for one test."""

    def __init__(self, made: Made, tmp_path: Path):
        self.made, self.tmp_path = made, tmp_path

    def get(self, name: str) -> Path:
        if name == "sweep":
            return self.made.sweep
        if name == "run":
            return self.made.sweep / "0"
        if name == "checkpoints":
            return self.get("run") / "checkpoints"
        if name == "export":
            return self.get("run") / "export"
        if name == "checkpoint":
            return self.get("checkpoints") / "best.ckpt"
        if name == "v1_pth":
            if not SHARED.is_dir():
                pytest.skip(f"{SHARED} is not present: the app's v1 file lives beside the repo, not in it")
            return SHARED / "fixtures" / "omfk_v1_model.pth"
        if name == "new_folder":
            return self.tmp_path / "app" / "LayoutModel"
        if name == "folder":
            return self.tmp_path
        if name == "words_txt":
            path = self.tmp_path / "words.txt"
            path.write_text("ghbdtn\nakuo\n", encoding="utf-8")
            return path
        return getattr(self.made, name)

    def value(self, value: str) -> str:
        for stand_in in STAND_INS:
            value = re.sub(stand_in.pattern, lambda _, s=stand_in: str(self.get(s.made)), value)
        return value

    def args(self, command: DocCommand) -> list[str]:
        """The command's arguments (after `python -m <module>`) with every placeholder replaced; a bare `...`
        (more of your overrides) is dropped. Fails on a placeholder the table does not know."""
        out = []
        for word in command.words[3:]:
            if word == "...":
                continue
            key, eq, value = word.partition("=")
            if word.startswith("-"):
                out.append(word)
            elif eq:
                out.append(f"{key}={self.known(command, value, key.lstrip('+') in INPUT_KEYS)}")
            else:  # a positional argument: a file or folder the command reads
                out.append(self.known(command, word, True))
        return out

    def stdin(self, command: DocCommand) -> str | None:
        """What the command reads on stdin: `printf '...' |` or `< file`."""
        if command.stdin_file is not None:
            return Path(self.known(command, command.stdin_file, True)).read_text(encoding="utf-8")
        return None if command.stdin_text is None else _printf(command.stdin_text)

    def known(self, command: DocCommand, value: str, read: bool) -> str:
        """`value` with its placeholders replaced by their stand-ins; a placeholder left over, or a file the
        command reads (`read`) that does not exist, fails the test."""
        for stand_in in STAND_INS:
            value = re.sub(stand_in.pattern, lambda _, s=stand_in: str(self.get(s.made)), value)
        if PLACEHOLDER.search(value) or (read and not Path(value).exists()):
            pytest.fail(
                f"{command.source}:{command.line}: `{value}` in `{command.text}` stands for something of the "
                "user's that this test has no stand-in for: add its pattern to STAND_INS in "
                "tests/test_documented_commands.py"
            )
        return value


# ---------------------------------------------------------------------------------------------------------
# Exercising a command

SPEED_OVERRIDES = {
    # parity rows come from the command's data (default: the full synthetic data, a minute to build)
    "layoutnet.export": [
        "data=tiny",
        "data.val_size=256",
        "export.parity_samples=300",
        "export.random_samples=30",
        "export.fp16_arithmetic_samples=32",
    ],
    "layoutnet.generate": ["data=tiny"],
}
SPEED_OVERRIDES["layoutnet.export.validate"] = SPEED_OVERRIDES["layoutnet.export"]
"""What a command gets appended, for each key (or config group) it does not set itself."""


def _sets(args: list[str], override: str) -> bool:
    key = override.split("=", 1)[0]
    group = key.split(".", 1)[0]
    return any(arg.lstrip("+~").startswith((f"{key}=", f"{group}=")) for arg in args)


def with_speed_overrides(module: str, args: list[str]) -> list[str]:
    return [*args, *(o for o in SPEED_OVERRIDES.get(module, []) if not _sets(args, o))]


def run_real(module: str, args: list[str], stdin: str | None, cwd: Path) -> subprocess.CompletedProcess:
    """The command as a user runs it, from `cwd` (its relative outputs and `outputs/` land there)."""
    return run_module(
        module, args, cwd=cwd, timeout=600, full_error=False, env={"LAYOUTNET_ROOT": str(cwd)}, stdin=stdin
    )


PREDICTION = re.compile(r"^(?P<text>.*) -> (?P<result>.+?) \| (?P<top>\w+ \d\.\d{3}(?:, \w+ \d\.\d{3})*)$")


def check_predict_output(command: DocCommand, words: list[str], stdout: str, stdin: str | None) -> None:
    """One line per text, in the documented shape: `text -> corrected | class p, ...` with as many classes
    as the doc shows, or JSON objects with the keys the doc shows."""
    from layoutnet.contract import CLASSES

    texts = [w.split("=", 1)[1] for w in words if w.startswith("text=")] or (stdin or "").splitlines()
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == len(texts), f"{len(texts)} texts in, {len(lines)} lines out:\n{stdout}"
    shown_json = [line for line in command.shown if line.startswith("{")]
    shown_text = [m for m in map(PREDICTION.match, command.shown) if m]
    for text, line in zip(texts, lines, strict=True):
        if shown_json:
            obj = json.loads(line)
            keys = set(re.findall(r'"(\w+)":', shown_json[0]))
            assert keys <= set(obj) and obj["text"] == text, f"{line!r} lacks the shown keys {sorted(keys)}"
            continue
        match = PREDICTION.match(line)
        assert match and match["text"] == text, f"{line!r} is not `{text} -> ... | class p, ...`"
        top = match["top"].split(", ")
        assert all(entry.split()[0] in CLASSES for entry in top), line
        if shown_text:
            assert len(top) == len(shown_text[0]["top"].split(", ")), (
                f"{line!r} vs the doc's {shown_text[0][0]!r}"
            )


def check_refused(done: subprocess.CompletedProcess, expected: str) -> None:
    """Refused (exit 1) with the shown `error:` line (a `...` in it stands for any text)."""
    pattern = ".*".join(map(re.escape, expected.split("...")))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and errors, f"not refused (exit {done.returncode}):\n{done.stderr[-2000:]}"
    assert any(re.fullmatch(pattern, line) for line in errors), (
        f"refused with {errors}, the doc shows {expected!r}"
    )


# Training commands: the config composed in process, checked as a run checks it before training.


def compose_train(overrides: list[str], hydra: bool = False):
    """The `train` config of `overrides` (a fresh copy: the grids of several commands share jobs)."""
    return copy.deepcopy(_composed(tuple(overrides), hydra))


@functools.cache
def _composed(overrides: tuple[str, ...], hydra: bool):
    from hydra import compose, initialize_config_dir

    from layoutnet.config import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def sweep_jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of the jobs Hydra would run: one for a plain run or an Optuna sweep (its base
    config), every combination of the basic sweeper's `hydra.sweeper.params` and command-line sweeps."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    base = compose_train(fixed, hydra=True)
    if not multirun and "MULTIRUN" not in str(base.hydra.mode):
        assert fixed == overrides, "a sweep needs -m (--multirun)"
        return [overrides]
    sweeper = base.hydra.sweeper
    if not str(sweeper._target_).endswith("BasicSweeper"):
        return [fixed]
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    batches = BasicSweeper.split_arguments(
        OverridesParser.create().parse_overrides([*params, *overrides]), None
    )
    return [job for batch in batches for job in batch]


def check_before_training(cfg) -> None:
    """What a run refuses before it builds anything (fit.run, then Run.prepare's own first checks)."""
    from layoutnet.config import check_trainer_settings, require_values
    from layoutnet.export.settings import ExportSettings
    from layoutnet.fit import REQUIRED_HINTS
    from layoutnet.reporting.objective import objective_name

    require_values(cfg, REQUIRED_HINTS)
    objective_name(cfg)
    if cfg.get("export") is not None:
        ExportSettings.from_config(cfg.export)
    check_trainer_settings(cfg.get("trainer"))


SMALL_TABLES = 10_000
"""Synthetic data whose word lists are at most this long is built for real (the tiny data: seconds)."""


def _small(config) -> bool:
    sizes = [spec.vocab_size for spec in config.languages]
    sizes += [config.prior.lexicon_size, config.ambiguous.lexicon_size]
    return all(size is not None and size <= SMALL_TABLES for size in sizes)


def prepare_run(cfg, run_dir: Path, monkeypatch) -> None:
    """`fit.Run.prepare` on the composed config (outputs under `run_dir`). The full synthetic data's
    word tables take a minute: for such data only the layouts are checked. A GPU trainer on a machine
    without one is built for the CPU (the accelerator is the machine's, not the doc's)."""
    import torch
    from omegaconf import OmegaConf, open_dict

    from layoutnet import fit
    from layoutnet.data.synthetic import SyntheticSource

    prepare, meaning = SyntheticSource._prepare, SyntheticSource.label_meaning
    monkeypatch.setattr(
        SyntheticSource, "_prepare", lambda self: prepare(self) if _small(self.config) else self._layouts()
    )
    monkeypatch.setattr(
        SyntheticSource, "label_meaning", lambda self: meaning(self) if _small(self.config) else None
    )
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):  # what seed_everything sets, undone after the test
        monkeypatch.setenv(name, "0")
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = str(run_dir)
    trainer = cfg.get("trainer") or {}
    if trainer.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
        with open_dict(cfg):
            cfg.trainer.accelerator, cfg.trainer.precision = "cpu", "32-true"
    fit._adapt_to_missing_validation(cfg)
    runner = fit.Run(cfg, run_dir)
    runner.prepare()


def check_training(words: list[str], tmp_path: Path, monkeypatch) -> None:
    multirun = any(w in ("-m", "--multirun") for w in words)
    overrides = [w for w in words if w not in ("-m", "--multirun")]
    jobs = sweep_jobs(overrides, multirun)
    for number, job in enumerate(jobs):
        cfg = compose_train(job)
        check_before_training(cfg)
        if number == 0:
            prepare_run(cfg, tmp_path / "run", monkeypatch)


def check_make(target: str) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w.-]+)\s*:(?!=)", makefile, flags=re.M))
    assert target in targets, f"the Makefile has no target {target!r} (it has {sorted(targets)})"


def check_script(script: str, flags: list[str]) -> None:
    assert (REPO_ROOT / script).is_file(), f"{script} does not exist"
    usage = _help(script)
    for flag in flags:
        assert flag in usage, f"{script} --help does not list {flag}"


@functools.cache
def _help(script: str) -> str:
    done = subprocess.run(
        [sys.executable, script, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def check_pip(words: list[str]) -> None:
    assert words[:3] == ["pip", "install", "-e"], f"no check for {shlex.join(words)}"
    extras = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", words[3])
    assert extras, f"not this repository: {words[3]}"
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for extra in (extras[1] or "").split(","):
        assert not extra or extra in declared.get("optional-dependencies", {}), f"no extra {extra!r}"


# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Made:
    return Made(tmp_path_factory.mktemp("documented"))


@pytest.mark.parametrize("command", _params())
def test_documented_command_works_as_shown(command: DocCommand, made, tmp_path, monkeypatch):
    stand_ins = StandIns(made, tmp_path)
    program = command.words[0]
    for set_up in (program, " ".join(command.words[1:3])):
        if set_up in SET_UP:
            pytest.skip(SET_UP[set_up])
    if program == "make":
        return check_make(command.words[1])
    if program == "pip":
        return check_pip(command.words)
    assert program in ("python", "python3"), f"no way to exercise `{program}`: add one to this file"
    if command.words[1] != "-m":
        return check_script(command.words[1], [w for w in command.words[2:] if w.startswith("--")])
    module, args, stdin = command.words[2], stand_ins.args(command), stand_ins.stdin(command)
    if command.refusal is not None:
        check_refused(run_real(module, args, stdin, tmp_path), command.refusal)
    elif module == TRAIN:
        check_training(args, tmp_path, monkeypatch)
    else:
        assert module in RUN_FOR_REAL, f"no way to exercise `python -m {module}`: add it to RUN_FOR_REAL"
        args = with_speed_overrides(module, args)
        done = run_real(module, args, stdin, tmp_path)
        assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        if module == "layoutnet.predict":
            check_predict_output(command, args, done.stdout, stdin)


def test_every_doc_with_commands_is_read():
    """The reader finds the commands of each doc with a ```bash block (it cannot silently find none)."""
    found = {command.source for command in documented_commands()}
    for path in DOCS:
        if "```bash" in path.read_text(encoding="utf-8"):
            assert path.relative_to(REPO_ROOT).as_posix() in found, f"no command read from {path}"
    readme = [c.words[:3] for c in documented_commands() if c.source == "README.md"]
    assert ["python", "-m", "layoutnet"] in readme, "the README's daily commands were not read"


def test_known_broken_entries_are_still_documented():
    shown = {(command.source, command.text) for command in documented_commands()}
    stale = [entry for entry in KNOWN_BROKEN if entry not in shown]
    assert not stale, f"KNOWN_BROKEN names commands the docs no longer show: {stale}"


def test_reader_joins_continuations_and_keeps_shown_output(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```bash\n"
        "# a description, not output\n"
        "python -m layoutnet +experiment=cnn \\\n"
        "    trainer.max_epochs=5   # a comment\n"
        "\n"
        "printf 'a\\nb\\n' | python -m layoutnet.predict model_path=... top_k=1\n"
        "# a -> a | en 0.9\n"
        "apt-get update && python scripts/x.py --flag < in.txt\n"
        "```\n"
        "```\n"
        "$ python -m layoutnet model.lr=0\n"
        "error: ConfigError: model.lr=0: must be > 0\n"
        "```\n",
        encoding="utf-8",
    )
    commands = read_commands(doc)
    assert [c.text for c in commands] == [
        "python -m layoutnet +experiment=cnn trainer.max_epochs=5",
        "printf 'a\\nb\\n' | python -m layoutnet.predict model_path=... top_k=1",
        "apt-get update",
        "python scripts/x.py --flag < in.txt",
        "python -m layoutnet model.lr=0",
    ]
    assert [c.line for c in commands] == [3, 6, 8, 8, 11]
    assert commands[0].shown == [] and commands[1].shown == ["a -> a | en 0.9"]
    assert _printf(commands[1].stdin_text) == "a\nb\n" and commands[3].stdin_file == "in.txt"
    assert commands[4].refusal == "error: ConfigError: model.lr=0: must be > 0"


@pytest.mark.parametrize(
    "word", ["model_path=<model>/best.ckpt", "data_path=my_words.csv", "out=/path/to/somewhere", "NAME"]
)
def test_a_placeholder_without_a_stand_in_fails_the_test(word, tmp_path):
    command = DocCommand("docs/new.md", 1, ["python", "-m", "layoutnet.evaluate", word])
    with pytest.raises(pytest.fail.Exception, match="add its pattern to STAND_INS"):
        StandIns(Made(tmp_path), tmp_path).args(command)
