"""The main job as one library function: detect -> plan -> pull -> load -> smoke test (smoke.py).

`qwenctl run` calls ``start`` and then chats; `qwenctl serve` calls ``prepare`` and hands the files
to the engine's own server.
Nothing here draws: every step is announced to a ``Reporter`` (qwenctl.render.run draws
one for the terminal), which is also where the "download N GB?" question is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qwenctl.backends import LoadOptions
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.smoke import SmokeTest, smoke_test

if TYPE_CHECKING:
    from collections.abc import Callable

    from qwenctl.backends import SamplingOptions, Session
    from qwenctl.chat import OneShot
    from qwenctl.fetch import ModelFiles, PullProgress
    from qwenctl.hardware.facts import Hardware
    from qwenctl.plan import Plan, PlanResult


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for; None means "let the planner decide"."""

    size: str | None = None  # "0.5B" ... "72B"
    quant: str | None = None  # "q4_k_m" ...
    backend: str | None = None  # "llama.cpp" | "mlx"
    n_ctx: int | None = None
    profile: str | None = None  # plan for a profiled device instead of this machine
    model: str | None = None  # PATH (a .gguf file or MLX folder) or REPO[:FILE]; skips planning
    offline: bool = False  # use the local cache only; never contact the hub
    assume_yes: bool = False  # download without asking
    smoke_seconds: float = 3.0


class Reporter(Protocol):
    """How the pipeline tells the user what it does (and asks before downloading)."""

    def step(self, message: str) -> None: ...

    def plan(self, result: PlanResult) -> None: ...

    def confirm_download(self, what: str, size_bytes: int | None) -> bool: ...

    def download(self, progress: PullProgress) -> None: ...

    def smoke(self, result: SmokeTest) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class RunSummary:
    """What `run --no-chat --json` prints: the model, where it came from, how it was loaded, how fast it ran."""

    model: str
    files: ModelFiles
    backend: str
    load_options: LoadOptions
    n_gpu_layers: int  # what the loader actually used (it may retreat after an out-of-memory)
    load_notes: tuple[str, ...]
    plan: Plan | None
    smoke: SmokeTest | None


@dataclass(frozen=True)
class Prepared:
    """A model on disk, verified, with the settings to load it: what `serve` needs before its engine starts."""

    model_name: str
    files: ModelFiles
    backend: str
    load_options: LoadOptions
    plan: Plan | None  # None for --model
    hardware: Hardware


@dataclass(frozen=True)
class Started:
    """A loaded model ready to chat, and how it got there."""

    prepared: Prepared
    session: Session
    smoke: SmokeTest | None

    def summary(self) -> RunSummary:
        p = self.prepared
        return RunSummary(
            model=p.model_name,
            files=p.files,
            backend=p.backend,
            load_options=p.load_options,
            n_gpu_layers=self.session.n_gpu_layers,
            load_notes=tuple(getattr(self.session, "notes", ())),
            plan=p.plan,
            smoke=self.smoke,
        )


def prepare(request: RunRequest, reporter: Reporter, check_backend: Callable[[str], None] | None = None) -> Prepared:
    """detect -> plan (or --model) -> files from the cache, or downloaded after asking.

    `check_backend(name)` runs once the plan names the backend and before any download, so a
    missing engine (or its server code) fails before gigabytes arrive for nothing.
    """
    from qwenctl.hardware import detect

    if request.model:
        # the file first: a missing or unusable path is one line before anything else is said
        files = _named_model(request, reporter)
        path, found = local_model(Path(files.load_path))
        if str(path) != files.load_path:
            files = replace(files, load_path=str(path))
        backend = request.backend or found
        reporter.step("detecting hardware")
        hardware = detect()
        options = unplanned_load_options(hardware, request.n_ctx)
        name = Path(files.load_path).name if files.repo is None else f"{files.repo}:{files.filenames[0]}"
        return Prepared(name, files, backend, options, None, hardware)
    reporter.step("detecting hardware")
    hardware = detect()
    result = _plan(request, hardware)
    from qwenctl.machine import MEASURE_HINT

    if request.profile is None and any(MEASURE_HINT in a for a in result.assumptions):
        # the plan rests on an assumed host bandwidth: measure it once (under a second, then cached
        # for this machine) and plan again on the measured figure
        from qwenctl.hardware import measure_bandwidth

        reporter.step("measuring this machine's memory bandwidth (once; remembered)")
        measure_bandwidth(hardware)
        hardware = detect()
        result = _plan(request, hardware)
    reporter.plan(result)
    plan = result.chosen
    if check_backend is not None:
        check_backend(plan.backend)
    files = _fetch_planned(plan, request, reporter)
    return Prepared(f"Qwen2.5 {plan.name}", files, plan.backend, load_options(plan), plan, hardware)


def load_options(plan: Plan) -> LoadOptions:
    """The options a plan loads its model with (``qwenctl.backends.load_backend``)."""
    return LoadOptions(
        n_ctx=plan.n_ctx,
        n_gpu_layers=plan.n_gpu_layers,
        n_threads=plan.n_threads,
        flash_attn=plan.flash_attn or None,  # not required by the plan: llama.cpp's auto rule (on for the CPU)
        kv_cache_type=plan.kv_cache_type,
    )


def unplanned_load_options(hardware: Hardware, n_ctx: int | None) -> LoadOptions:
    """Load options for a `--model` we have no plan for: every layer on the GPU if there is one (the
    loader retreats on an out-of-memory, a CPU-only build ignores it) with flash attention, as plans
    choose on CUDA and Metal (on the H100 it decodes the 7B Q4_K_M 12 % faster), else llama.cpp's auto
    rule; the threads plans use (machine.threads: run, bench and serve alike); the context asked for,
    or LoadOptions' default."""
    from qwenctl.hardware.facts import Absent
    from qwenctl.machine import threads

    gpu = bool(hardware.gpus) or not isinstance(hardware.apple, Absent)
    return LoadOptions(n_ctx=n_ctx or LoadOptions.n_ctx, n_gpu_layers=-1 if gpu else 0, n_threads=threads(hardware),
                       flash_attn=True if gpu else None)


def start(request: RunRequest, reporter: Reporter) -> Started:
    """Everything between "qwenctl run" and the first prompt. The caller closes the session."""
    from qwenctl.backends import load_backend

    p = prepare(request, reporter)
    reporter.step(f"loading {p.model_name} with {p.backend}")
    session = load_backend(p.backend, Path(p.files.load_path), p.load_options)
    try:
        for note in getattr(session, "notes", ()):
            reporter.warn(note)
        smoke = None
        if request.smoke_seconds > 0:
            reporter.step("smoke test: a few seconds of generation")
            # a profile's prediction is for another machine: nothing to compare with here
            predicted = p.plan.tg_tps if p.plan is not None and request.profile is None else None
            smoke = smoke_test(session, request.smoke_seconds, predicted, p.hardware)
            reporter.smoke(smoke)
            _remember_speed(p, smoke)
    except BaseException:
        session.close()
        raise
    return Started(p, session, smoke)


def answer(session: Session, text: str, system: str | None = None, sampling: SamplingOptions | None = None,
           on_text: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> OneShot:
    """`run -p PROMPT` and a prompt piped in: one answer without history (chat.ask), refusing an empty prompt."""
    from qwenctl.chat import ask

    if not text.strip():
        raise QwenctlError("empty prompt", hint='pass -p "..." or pipe some text in', code=ExitCode.BAD_INPUT)
    return ask(session, text, system, sampling, on_text=on_text, warn=warn)


def chosen_plan(request: RunRequest) -> Plan:
    """The plan for `request`'s constraints on this machine (or its profile), as `pull` without REPO fetches it."""
    from qwenctl.hardware import detect

    return _plan(request, detect() if not request.profile else None).chosen


def _plan(request: RunRequest, hardware: Hardware | None) -> PlanResult:
    from qwenctl.plan import Constraints, plan

    if request.profile:
        from qwenctl.profiles import load_profile

        target = load_profile(request.profile)
    else:
        assert hardware is not None, "this machine's hardware, when no profile is asked for"
        target = hardware
    constraints = Constraints(size=request.size, quant=request.quant, backend=request.backend, n_ctx=request.n_ctx)
    return plan(target, constraints)


def _fetch_planned(plan: Plan, request: RunRequest, reporter: Reporter) -> ModelFiles:
    """The planned files from the cache without any network request, or else downloaded."""
    from qwenctl import fetch

    files = list(plan.files) or None
    cached = _cached(lambda: fetch.pull(plan.repo, files, offline=True), request)
    if cached is not None:
        reporter.step(f"using the cached, verified {plan.repo} ({', '.join(cached.filenames)})")
        return cached
    if len(plan.files) == 1:
        what = f"{plan.files[0]} from {plan.repo}"
    else:
        what = f"{len(plan.files)} files from {plan.repo}" if plan.files else plan.repo
    _confirm(what, plan.download_bytes, request, reporter)
    reporter.step(f"downloading {what}")
    return fetch.pull(plan.repo, files, progress=reporter.download)


def _named_model(request: RunRequest, reporter: Reporter) -> ModelFiles:
    """`--model PATH|REPO[:FILE]`: a local path as is; a repo from the cache first, else downloaded."""
    from qwenctl import fetch

    assert request.model is not None
    try:
        return fetch.resolve_model_arg(request.model, offline=True)
    except QwenctlError as e:
        if request.offline or e.code not in (ExitCode.NOT_FOUND, ExitCode.INTEGRITY):
            raise
        try:
            fetch.parse_spec(request.model)
        except QwenctlError:  # not a repo name either: the first error ("no such file") says it best
            raise e from None
    _confirm(request.model, None, request, reporter)
    reporter.step(f"downloading {request.model}")
    return fetch.resolve_model_arg(request.model, progress=reporter.download)


def _cached(lookup, request: RunRequest) -> ModelFiles | None:
    """The cached copy, or None when it must be downloaded (and may be)."""
    try:
        return lookup()
    except QwenctlError as e:
        # not cached, or a cached copy that fails verification: fetch it (again) unless offline
        if request.offline or e.code not in (ExitCode.NOT_FOUND, ExitCode.INTEGRITY):
            raise
        return None


def _confirm(what: str, size_bytes: int | None, request: RunRequest, reporter: Reporter) -> None:
    if request.assume_yes or reporter.confirm_download(what, size_bytes):
        return
    raise QwenctlError(f"not downloading {what}", hint="rerun with --yes to download without asking", code=ExitCode.ERROR)


def _remember_speed(p: Prepared, smoke: SmokeTest) -> None:
    """Store this machine's measured chat speed against the physics prediction (before any earlier
    correction, so corrections never compound): later plans here learn from it."""
    plan = p.plan
    if plan is None or plan.speed is None or p.hardware is None or p.hardware.name is not None or smoke.warning:
        return
    from qwenctl import speed_history

    raw = plan.speed.chat_tps / plan.speed.correction
    speed_history.record(p.hardware, plan.backend, plan.device, raw, smoke.decode_tps, "smoke test")


def backend_for_path(path: Path) -> str:
    """A .gguf file is for llama.cpp, a folder with config.json for mlx (see ``local_model``)."""
    return local_model(path)[1]


def local_model(path: Path) -> tuple[Path, str]:
    """What a model on disk loads, and with which engine: a .gguf file with llama.cpp, a folder with
    config.json with mlx, a folder holding exactly one .gguf file (and no config.json) that file."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return path, "mlx"
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise QwenctlError(f"{path} is a folder without config.json or a single .gguf file",
                               hint="point --model at a .gguf file or an MLX model folder", code=ExitCode.BAD_INPUT)
        path = ggufs[0]
    if path.suffix.lower() == ".gguf":
        return path, "llama.cpp"
    raise QwenctlError(f"{path} is not a .gguf file", hint="point --model at a .gguf file or an MLX model folder", code=ExitCode.BAD_INPUT)
