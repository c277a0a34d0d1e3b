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
from qwenctl.errors import ExitCode, QwenctlError, from_os_error
from qwenctl.smoke import SmokeTest, smoke_test

if TYPE_CHECKING:
    from collections.abc import Callable

    from qwenctl.backends import SamplingOptions, Session
    from qwenctl.chat import OneShot
    from qwenctl.fetch import ModelFiles, PullProgress
    from qwenctl.hardware.facts import Hardware
    from qwenctl.plan import Plan, PlanResult
    from qwenctl.resolve import ModelRef


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for; None means "let the planner decide"."""

    size: str | None = None  # "0.5B" ... "72B"
    quant: str | None = None  # "q4_k_m" ...
    backend: str | None = None  # "llama.cpp" | "mlx"
    n_ctx: int | None = None
    profile: str | None = None  # plan for a profiled device instead of this machine
    model: str | None = None  # MODEL as typed (resolve.py): 7b:q8_0, qwen2.5:7b, REPO[:FILE|:QUANT], PATH, ollama:NAME
    offline: bool = False  # use the local cache only; never contact the hub
    assume_yes: bool = False  # download without asking
    smoke_seconds: float = 3.0
    smoke: bool | None = None  # None: once per model file and machine; True: every time; False: never
    resident: bool = True  # use a running `qwenctl serve` of the same model instead of loading it again
    all_quants: bool = False  # pull: every quant of a bare GGUF repo, not the planned one
    gpus: str | None = None  # --gpus with --profile: the profile's GPUs to plan for (this machine's: CUDA_VISIBLE_DEVICES)
    workers: tuple[str, ...] = ()  # --workers: RPC workers (host:port) a plan may spread over


class Reporter(Protocol):
    """How the pipeline tells the user what it does (and asks before downloading)."""

    def step(self, message: str) -> None: ...

    def plan(self, result: PlanResult) -> None: ...

    def confirm_download(self, what: str, size_bytes: int | None) -> bool: ...

    def download(self, progress: PullProgress) -> None: ...

    def smoke(self, result: SmokeTest) -> None: ...

    def warn(self, message: str) -> None: ...

    def sizing(self, what: str, size_bytes: int) -> None: ...  # "all 9 quants of REPO: 52.3 GiB", before they come

    def note(self, message: str) -> None: ...  # said even with --json (not with -q): where the reply comes from


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
    model_id: str | None = None  # what a server publishes, where the file's name would not do (an Ollama blob)
    workers: tuple = ()  # the RPC workers (cluster.Worker) as probed before planning


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


def plan_here(plan_on: Callable[[Hardware], PlanResult], step: Callable[[str], None]) -> tuple[Hardware, PlanResult]:
    """This machine's hardware and plan (``plan_on``), on a measured host bandwidth: where the plan rests on the assumed
    figure, the read test runs once (under a second, then cached for this machine) and the plan is made again, so the
    first plan of a machine is not its least honest one. ``step`` says so before the test runs."""
    from qwenctl.hardware import detect, measure_bandwidth
    from qwenctl.machine import MEASURE_HINT

    hardware = detect()
    result = plan_on(hardware)
    if any(MEASURE_HINT in a for a in result.assumptions):
        step("measuring this machine's memory bandwidth (once; remembered)")
        _, not_remembered = measure_bandwidth(hardware)
        if not_remembered:  # this plan still rests on the measurement; the next run measures again
            step(f"not remembered, measured again next time: {not_remembered}")
        hardware = detect()
        result = plan_on(hardware)
    return hardware, result


def prepare(request: RunRequest, reporter: Reporter, check_backend: Callable[[str], None] | None = None) -> Prepared:
    """detect -> plan (or MODEL, resolve.py) -> files from the cache, or downloaded after asking.

    `check_backend(name)` runs once the backend is known and before any download, so a missing
    engine (or its server code) fails before gigabytes arrive for nothing; by default it checks that
    the engine imports (``check_engine``).
    """
    from qwenctl.hardware import detect

    check = check_backend or check_engine
    request, ref = resolved(request)
    if ref is not None:
        # the file first: a missing or unusable path is one line before anything else is said
        files, backend, name, model_id = _named_model(ref, request, reporter, check)
        reporter.step("detecting hardware")
        hardware = detect()
        options = unplanned_load_options(hardware, request.n_ctx)
        if gpus_full(hardware):
            reporter.warn("no GPU here has room for llama.cpp's CUDA context (`nvidia-smi` lists what holds their memory): "
                          "loading on the CPU, without the GPU")
        workers = request_workers(request)
        if backend == "llama.cpp":
            options = split_for_file(hardware, Path(files.load_path), options, reporter, workers)
        return Prepared(name, files, backend, options, None, hardware, model_id, workers)
    reporter.step("detecting hardware")
    workers = request_workers(request)
    if request.profile is None:
        hardware, result = plan_here(lambda hw: _plan(request, hw, workers), reporter.step)
    else:
        hardware = detect()
        result = _plan(request, hardware, workers)
    reporter.plan(result)
    plan = result.chosen
    check(plan.backend)
    files = _fetch_planned(plan, request, reporter)
    return Prepared(f"Qwen2.5 {plan.name}", files, plan.backend, load_options(plan), plan, hardware, None, workers)


def load_options(plan: Plan) -> LoadOptions:
    """The options a plan loads its model with (``qwenctl.backends.load_backend``)."""
    return LoadOptions(
        n_ctx=plan.n_ctx,
        n_gpu_layers=plan.n_gpu_layers,
        n_threads=plan.n_threads,
        flash_attn=plan.flash_attn or None,  # not required by the plan: llama.cpp's auto rule (on for the CPU)
        kv_cache_type=plan.kv_cache_type,
        split_mode=plan.split_mode if plan.device == "cuda" or plan.workers else None,
        tensor_split=plan.tensor_split,
        main_gpu=plan.main_gpu,
        workers=plan.workers,
        op_offload=False if plan.device == "cpu" else None,
    )


def split_for_file(hardware: Hardware, path: Path, options: LoadOptions, reporter: Reporter,
                   workers: tuple = ()) -> LoadOptions:
    """A GGUF at hand on a machine with several GPUs or with workers: the split the planner chooses for its size
    and quant.

    The file's dimensions and quant name its catalog entry (predict._file_model); a file the catalog does
    not know keeps llama.cpp's own default (layers over every device by free memory), said so.
    """
    if len(hardware.gpus) < 2 and not workers:
        return options
    from qwenctl.plan import Constraints, plan
    from qwenctl.predict import catalog_entry

    size, quant = catalog_entry(path)
    if size is None or quant is None:
        reporter.note(f"{path.name} is not a Qwen2.5 size the planner knows: llama.cpp spreads its layers over every "
                      "device by free memory" + (" (every layer on the workers)" if workers else ""))
        return replace(options, workers=tuple(w.endpoint for w in workers), n_gpu_layers=-1, split_mode="layer") if workers else options
    try:
        chosen = plan(hardware, Constraints(size=size, quant=quant, n_ctx=options.n_ctx, min_tg_tps=0), workers).chosen
    except QwenctlError:
        return options
    from qwenctl.split import describe, workers_named

    spread = describe(chosen.split_mode, chosen.tensor_split, chosen.main_gpu, workers_named(chosen.workers))
    reporter.note(f"{spread}: the planner's choice for {size} {quant.upper()} here ({chosen.split_reason})")
    return replace(options, split_mode=chosen.split_mode, tensor_split=chosen.tensor_split, main_gpu=chosen.main_gpu,
                   workers=chosen.workers, n_gpu_layers=chosen.n_gpu_layers if chosen.workers else options.n_gpu_layers)


def gpus_full(hardware: Hardware) -> bool:
    """Whether no GPU here has room for what llama.cpp's CUDA backend starts on it (another program holds the rest):
    a load is then one on the CPU alone, as a plan there is (`estimate.cuda_context_bytes` says what happens else)."""
    from qwenctl.estimate import cuda_context_bytes
    from qwenctl.hardware.nvidia_specs import resident_threads

    return bool(hardware.gpus) and all(
        not g.unified_memory and g.memory_free_bytes is not None and g.memory_free_bytes < cuda_context_bytes(resident_threads(g))
        for g in hardware.gpus)


def unplanned_load_options(hardware: Hardware, n_ctx: int | None) -> LoadOptions:
    """Load options for a `--model` we have no plan for: every layer on the GPU if there is one (the
    loader retreats on an out-of-memory, a CPU-only build ignores it) with flash attention, as plans
    choose on CUDA and Metal (on the H100 it decodes the 7B Q4_K_M 12 % faster), else llama.cpp's auto
    rule; the threads plans use (machine.threads: run, bench and serve alike); the context asked for,
    or LoadOptions' default."""
    from qwenctl.hardware.facts import Absent
    from qwenctl.machine import threads

    gpu = bool(hardware.gpus) and not gpus_full(hardware) or not isinstance(hardware.apple, Absent)
    return LoadOptions(n_ctx=n_ctx or LoadOptions.n_ctx, n_gpu_layers=-1 if gpu else 0, n_threads=threads(hardware),
                       flash_attn=True if gpu else None, op_offload=None if gpu else False)


def start(request: RunRequest, reporter: Reporter) -> Started:
    """Everything between "qwenctl run" and the first prompt. The caller closes the session."""
    from qwenctl.backends import load_backend

    p = prepare(request, reporter)
    server = _resident_server(request, p, reporter) if request.resident else None
    if server is not None:
        from qwenctl.backends.remote import RemoteSession

        reporter.note(f"using the running qwenctl serve of {p.model_name} at {server.url} (pid {server.pid}); "
                      "--no-server loads it here instead")
        return Started(p, RemoteSession(server, api_key=_api_key()), None)
    reporter.step(f"loading {p.model_name} with {p.backend}")
    session = load_backend(p.backend, Path(p.files.load_path), p.load_options)
    try:
        for note in getattr(session, "notes", ()):
            reporter.warn(note)
        smoke = None
        if _smoke_wanted(request, p, reporter):
            reporter.step("smoke test: a few seconds of generation")
            # a profile's prediction is for another machine: nothing to compare with here
            predicted = p.plan.tg_tps if p.plan is not None and request.profile is None else None
            smoke = smoke_test(session, request.smoke_seconds or SMOKE_SECONDS, predicted, p.hardware)
            reporter.smoke(smoke)
            try:
                _remember_speed(p, smoke)
                if p.hardware.name is None:  # this machine, not a profile's
                    from qwenctl import speed_history

                    speed_history.record_smoke(p.hardware, p.files.load_path, p.backend, smoke.decode_tps, predicted)
            except OSError as e:  # a full disk or a read-only home must not end the chat the smoke test cleared
                reporter.warn(f"the smoke test is not remembered (the next run tests again, later plans are not "
                              f"corrected by it): {from_os_error(e, doing='write').one_line()}")
    except BaseException:
        session.close()
        raise
    return Started(p, session, smoke)


SMOKE_SECONDS = RunRequest.smoke_seconds


def _api_key() -> str | None:
    import os

    return os.environ.get("QWENCTL_API_KEY") or None


def _resident_server(request: RunRequest, p: Prepared, reporter: Reporter):
    """A running `qwenctl serve` of this very file (llama.cpp: its vocabulary counts tokens here), with at least
    the context asked for and a key we have if it wants one; None to load the model in this process."""
    if p.backend != "llama.cpp":
        return None
    from qwenctl import resident

    server = resident.find(p.files.load_path, request.n_ctx)
    if server is not None and server.api_key_required and _api_key() is None:
        reporter.warn(f"a qwenctl serve of this model runs at {server.url} but wants an API key: loading it here "
                      "(set QWENCTL_API_KEY to use the server)")
        return None
    return server


def _smoke_wanted(request: RunRequest, p: Prepared, reporter: Reporter) -> bool:
    """--smoke-test: always; --no-smoke-test or a one-shot: never; else once per model file and machine."""
    if request.smoke is not None:
        return request.smoke
    if request.smoke_seconds <= 0:
        return False
    from qwenctl import speed_history

    done = speed_history.last_smoke(p.hardware, p.files.load_path, p.backend)
    if done is None:
        return True
    reporter.step(f"smoke test: passed here on {done.date} ({done.measured_tg:.1f} tok/s); --smoke-test runs it again")
    return False


def answer(session: Session, text: str, system: str | None = None, sampling: SamplingOptions | None = None,
           on_text: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> OneShot:
    """`run -p PROMPT` and a prompt piped in: one answer without history (chat.ask), refusing an empty prompt."""
    from qwenctl.chat import ask

    if not text.strip():
        raise QwenctlError("empty prompt", hint='pass -p "..." or pipe some text in', code=ExitCode.BAD_INPUT)
    return ask(session, text, system, sampling, on_text=on_text, warn=warn)


def pull_model(request: RunRequest, reporter: Reporter, revision: str | None = None) -> ModelFiles:
    """What `qwenctl pull [MODEL]` fetches: the planned files (a size, a tag, or nothing), the named files
    of a catalog entry with its quant (7b:q8_0, REPO:FILE: no plan needed to fetch them), or a repo's
    (REPO:FILE, REPO:QUANT; a bare GGUF repo's planned quant, every quant with `all_quants`)."""
    from qwenctl import fetch

    files: list[str] | None
    if request.model:
        from qwenctl.resolve import ModelRef, parse_model

        ref = parse_model(request.model)
        if request.all_quants and ref.kind == "catalog" and ref.quant is None:
            # every quant of the size's GGUF repo: the repo as named, or the catalog's for a size
            from qwenctl.catalog import load_catalog

            repo = ref.repo or next(w.repo for w in load_catalog().model(ref.size or "7B").weights if w.format == "gguf")
            ref = ModelRef(ref.text, "repo", repo=repo)
        if ref.kind in ("path", "ollama"):
            raise QwenctlError(f"{ref.text} is already on this machine: there is nothing to pull",
                               hint="pull takes a size (7b), a tag or REPO[:FILE]", code=ExitCode.USAGE)
        if ref.kind == "repo":
            assert ref.repo is not None
            files, _, _ = repo_selection(ref, request, reporter)
            return fetch.pull(ref.repo, files, revision=revision, offline=request.offline, progress=reporter.download)
        if ref.size and ref.quant:
            from qwenctl.catalog import load_catalog

            model = load_catalog().model(ref.size)
            w = model.weights_for("mlx" if ref.backend == "mlx" or ref.quant in load_catalog().quants("mlx") else "gguf", ref.quant)
            return fetch.pull(w.repo, files_to_ask(w.file_names, w.bytes_exact), revision=revision, offline=request.offline,
                              progress=reporter.download)
        request, _ = resolved(request)
    plan = chosen_plan(request, reporter.step)
    reporter.step(f"{plan.repo}: {plan.name}, the plan's choice for this machine")
    return fetch.pull(plan.repo, files_to_ask(plan.files, plan.download_bytes_exact), revision=revision,
                      offline=request.offline, progress=reporter.download)


def files_to_ask(files: tuple[str, ...], from_manifest: bool) -> list[str] | None:
    """What to ask the hub for: a catalog variant's files where the catalog has them from the repo's manifest (its
    bytes exact), else their quantization, which the hub's own listing resolves into the parts it has. The official
    72B files other than Q4_K_M are named from public command lines, not a manifest, so a wrong part count must not
    fail the download. None: the whole repo (MLX)."""
    from qwenctl.names import quant_of

    if not files:
        return None
    return list(files) if from_manifest else [quant_of(files[0]) or files[0]]


def chosen_plan(request: RunRequest, step: Callable[[str], None]) -> Plan:
    """The plan for `request`'s constraints on this machine (measured as `run` measures it: `plan_here`) or its profile,
    as `pull` without REPO fetches it."""
    if request.profile:
        return _plan(request, None).chosen
    return plan_here(lambda hw: _plan(request, hw), step)[1].chosen


def _plan(request: RunRequest, hardware: Hardware | None, workers: tuple | None = None) -> PlanResult:
    from qwenctl.plan import Constraints, plan

    if request.profile:
        from qwenctl.profiles import load_profile

        target = load_profile(request.profile)
        if request.gpus:
            from qwenctl.hardware.cuda_visible import select_gpus

            target = select_gpus(target, request.gpus)
    else:
        assert hardware is not None, "this machine's hardware, when no profile is asked for"
        target = hardware
    constraints = Constraints(size=request.size, quant=request.quant, backend=request.backend, n_ctx=request.n_ctx)
    return plan(target, constraints, request_workers(request) if workers is None else workers)


def request_workers(request: RunRequest) -> tuple:
    """The workers a plan for `request` may use (``plan_workers``)."""
    return plan_workers(request.workers, request.profile)


def plan_workers(endpoints: tuple[str, ...], profile: str | None) -> tuple:
    """The workers a plan may use: --workers probed now (a one-line error for one that does not answer), else a
    cluster profile's on paper."""
    if endpoints:
        from qwenctl.backends import rpc

        return tuple(rpc.probe(e) for e in endpoints)
    if profile:
        from qwenctl.profiles import load_workers

        return load_workers(profile)
    return ()


def _fetch_planned(plan: Plan, request: RunRequest, reporter: Reporter) -> ModelFiles:
    """The planned files from the cache without any network request, or else downloaded."""
    from qwenctl import fetch

    files = files_to_ask(plan.files, plan.download_bytes_exact)
    cached = _cached(lambda: fetch.pull(plan.repo, files, offline=True, keep_bad=True), request, reporter)
    if cached is not None:
        reporter.step(f"using the cached, verified {plan.repo} ({', '.join(cached.filenames)})")
        return cached
    if len(plan.files) == 1:
        what = f"{plan.files[0]} from {plan.repo}"
    else:
        what = f"{len(plan.files)} files from {plan.repo}" if plan.files else plan.repo
    _confirm(what, plan.download_bytes, request, reporter, f"{plan.repo}:{plan.files[0]}" if plan.files else plan.repo)
    reporter.step(f"downloading {what}")
    return fetch.pull(plan.repo, files, progress=reporter.download)


def resolved(request: RunRequest) -> tuple[RunRequest, ModelRef | None]:
    """MODEL read once (resolve.parse_model): a catalog entry becomes the plan's constraints (the planner
    completes it), anything else stays a named model."""
    if not request.model:
        return request, None
    from qwenctl.resolve import parse_model

    ref = parse_model(request.model)
    if ref.planned:
        return replace(request, model=None, size=ref.size or request.size, quant=ref.quant or request.quant,
                       backend=request.backend or ref.backend), None
    return request, ref


def check_engine(backend: str) -> None:
    """Fail with the install line, before any download, when the engine cannot be imported."""
    import importlib

    from qwenctl.install import INSTALL

    package, extra = {"llama.cpp": ("llama_cpp", "llama"), "mlx": ("mlx_lm", "mlx")}.get(backend, (None, None))
    if package is None or extra is None:
        raise QwenctlError(f"unknown backend {backend!r}", hint="choose llama.cpp or mlx", code=ExitCode.BAD_INPUT)
    try:
        importlib.import_module(package)
    except ImportError as e:
        raise QwenctlError(f"running a {backend} model needs {package}, which is not installed ({e})",
                           hint=INSTALL[extra], code=ExitCode.BACKEND) from None


def _named_model(ref: ModelRef, request: RunRequest, reporter: Reporter,
                 check: Callable[[str], None]) -> tuple[ModelFiles, str, str, str | None]:
    """A path, an Ollama model or a repo: its files (the repo's from the cache first, else downloaded after
    asking), engine, name and served id. The engine is checked before anything is downloaded."""
    from qwenctl import fetch

    if ref.kind == "ollama":
        from qwenctl import ollama

        found = ollama.resolve(ref.text)
        files = fetch.ModelFiles(repo=None, revision=None, commit=None, filenames=(found.blob.name,),
                                 paths=(str(found.blob),), load_path=str(found.blob), total_bytes=found.size_bytes)
        backend = request.backend or local_model(found.blob)[1]
        check(backend)
        reporter.step(f"using ollama:{found.name} where it lies in Ollama's store ({found.blob})")
        return files, backend, f"ollama:{found.name}", str(found.name)
    if ref.kind == "path":
        files = fetch.resolve_model_arg(str(ref.path))
        path, found_backend = local_model(Path(files.load_path))
        if str(path) != files.load_path:
            files = replace(files, load_path=str(path))
        backend = request.backend or found_backend
        check(backend)
        return files, backend, path.name, None
    assert ref.repo is not None
    files, backend = _repo_model(ref, request, reporter, check)
    name = f"{ref.repo}:{files.filenames[0]}" if files.filenames and backend == "llama.cpp" else ref.repo
    return files, backend, name, None


def offline(request: RunRequest) -> bool:
    """--offline, or HF_HUB_OFFLINE: nothing may be downloaded, so nothing is offered."""
    from qwenctl.fetch import HubSettings

    return request.offline or HubSettings.from_env().offline


def _repo_model(ref: ModelRef, request: RunRequest, reporter: Reporter,
                check: Callable[[str], None]) -> tuple[ModelFiles, str]:
    """REPO, REPO:FILE or REPO:QUANT: the files (a bare GGUF repo: the planned quant, never all of them),
    from the cache first, else downloaded after the engine check and the question."""
    from qwenctl import fetch

    assert ref.repo is not None
    wanted, backend, size = repo_selection(ref, request, reporter)
    backend = request.backend or backend
    check(backend)
    cached = _cached(lambda: fetch.pull(ref.repo, wanted, offline=True, keep_bad=True), request, reporter, ref.repo)
    if cached is not None:
        reporter.step(f"using the cached, verified {ref.repo} ({', '.join(cached.filenames)})")
        return cached, backend
    what = f"{wanted[0]} from {ref.repo}" if wanted and len(wanted) == 1 else ref.repo
    _confirm(what, size, request, reporter, f"{ref.repo}:{wanted[0]}" if wanted else ref.repo)
    reporter.step(f"downloading {what}")
    return fetch.pull(ref.repo, wanted, progress=reporter.download), backend


def repo_selection(ref: ModelRef, request: RunRequest, reporter: Reporter) -> tuple[list[str] | None, str, int | None]:
    """Which files of REPO to fetch, for which engine, and their size when known: REPO:FILE or REPO:QUANT as
    asked; a bare GGUF repo the quant the planner prefers (the plan for the size in the repo's name, else
    Q4_K_M, as `llama-server -hf` does), or every quant with `all_quants`; a repo without GGUF files whole
    (an MLX folder). The repo is listed from the cache when it has the planned files, else from the hub."""
    from qwenctl.names import quant_of

    assert ref.repo is not None
    if ref.file is not None:
        return [ref.file], "llama.cpp", None
    listing = _listing(ref.repo, request, every=request.all_quants)
    ggufs: dict[str, list[str]] = {}
    for name in sorted(listing):
        if name.endswith(".gguf") and quant_of(name):
            ggufs.setdefault(str(quant_of(name)), []).append(name)
    if not ggufs:
        if "config.json" in listing:
            return None, "mlx", sum(listing.values())
        raise QwenctlError(f"{ref.repo} holds no GGUF file and no MLX model", hint="name a file: REPO:FILE",
                           code=ExitCode.NOT_FOUND)
    sizes = {q: sum(listing[n] for n in names) for q, names in ggufs.items()}
    if request.all_quants:
        names = [n for q in sorted(ggufs) for n in ggufs[q]]
        count = f"all {len(ggufs)} quants" if len(ggufs) > 1 else "the one quant"
        reporter.sizing(f"{count} of {ref.repo} ({', '.join(sorted(ggufs))})", sum(sizes.values()))
        return names, "llama.cpp", sum(sizes.values())
    quant = _preferred_quant(ref.repo, list(ggufs), request)
    if quant is None:
        listed = ", ".join(sorted(ggufs))
        raise QwenctlError(f"{ref.repo} has {len(ggufs)} quants ({listed}) and no Q4_K_M to default to",
                           hint=f"name one, e.g. {ref.repo}:{sorted(ggufs)[0].lower()}, or pull --all for every one",
                           code=ExitCode.USAGE)
    if len(ggufs) > 1:
        reporter.step(f"{ref.repo}: {quant} of its {len(ggufs)} quants (REPO:QUANT picks another; pull --all takes all)")
    return [ggufs[quant][0]], "llama.cpp", sizes[quant]


def _listing(repo: str, request: RunRequest, every: bool = False) -> dict[str, int]:
    """The repo's files: the cache's when offline, or when it holds one model of the repo (one GGUF quant, or an
    MLX folder: what an earlier run chose, so a second run needs no network); else the hub's (`every`: always)."""
    from qwenctl import fetch
    from qwenctl.names import quant_of

    if offline(request):
        return fetch.repo_files(repo, offline=True)
    try:
        cached = fetch.repo_files(repo, offline=True)
    except QwenctlError:
        cached = {}
    quants = {quant_of(n) for n in cached if n.endswith(".gguf")} - {None}
    if not every and (len(quants) == 1 or (not quants and "config.json" in cached)):
        return cached
    return fetch.repo_files(repo)


def _preferred_quant(repo: str, quants: list[str], request: RunRequest) -> str | None:
    """The quant to take from a GGUF repo: the planner's best for the size its name states (Qwen2.5-7B…),
    else Q4_K_M (llama-server -hf's default), else the only one."""
    import re

    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)[Bb](?![a-zA-Z])", repo.rsplit("/", 1)[-1])
    if match:
        from qwenctl.catalog import load_catalog
        from qwenctl.hardware import detect
        from qwenctl.plan import Constraints, plan

        try:
            load_catalog().model(match[1] + "B")
            result = plan(detect(), Constraints(size=match[1] + "B", backend="llama.cpp", n_ctx=request.n_ctx))
        except QwenctlError:
            result = None
        if result is not None:
            ranked = [result.chosen] + [a.plan for a in result.alternatives if a.rejected is None]
            for p in ranked:
                label = p.quant.upper().replace("FP16", "F16")
                if label in quants:
                    return label
    if "Q4_K_M" in quants:
        return "Q4_K_M"
    return quants[0] if len(quants) == 1 else None


def _cached(lookup, request: RunRequest, reporter: Reporter | None = None, what: str = "") -> ModelFiles | None:
    """The cached copy, or None when it must be downloaded (and may be). A damaged cached copy is never
    replaced silently: offline it is an error, otherwise a warning says so before the question."""
    try:
        return lookup()
    except QwenctlError as e:
        if offline(request) or e.code not in (ExitCode.NOT_FOUND, ExitCode.INTEGRITY):
            raise
        if e.code == ExitCode.INTEGRITY and reporter is not None:
            reporter.warn(f"{e.message}; downloading it again replaces it")
        return None


def _confirm(what: str, size_bytes: int | None, request: RunRequest, reporter: Reporter, spec: str) -> None:
    if offline(request):  # never "download?" when nothing may be downloaded
        raise QwenctlError(f"{what} is not in the cache and offline mode is on",
                           hint=f"pull it once while online: qwenctl pull {spec}", code=ExitCode.NOT_FOUND)
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
    speed_history.record(p.hardware, plan.backend, plan.device, raw, smoke.decode_tps, "smoke test",
                         read_bytes=plan.speed.bytes_read)


def backend_for_path(path: Path) -> str:
    """A .gguf file is for llama.cpp, a folder with config.json for mlx (see ``local_model``)."""
    return local_model(path)[1]


def local_model(path: Path) -> tuple[Path, str]:
    """What a model on disk loads, and with which engine: a GGUF file (known by its magic, whatever its
    name: Ollama's blobs are sha256-…) with llama.cpp, a folder with config.json with mlx, a folder
    holding exactly one .gguf file (and no config.json) that file."""
    from qwenctl.resolve import is_gguf

    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return path, "mlx"
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise QwenctlError(f"{path} is a folder without config.json or a single .gguf file",
                               hint="point MODEL at a GGUF file or an MLX model folder", code=ExitCode.BAD_INPUT)
        path = ggufs[0]
    if is_gguf(path):
        return path, "llama.cpp"
    raise QwenctlError(f"{path} is not a GGUF file (it does not start with the GGUF magic)",
                       hint="point MODEL at a GGUF file or an MLX model folder", code=ExitCode.BAD_INPUT)
